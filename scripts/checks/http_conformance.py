#!/usr/bin/env python3
"""HTTP conformance and request-smuggling suite for magma-monitor.

Each case sends exact bytes (HTTP/1.1 over a raw TCP socket) or exact frames
(HTTP/2 with prior knowledge, built with the `h2` library) to the proxy, which
forwards to an upstream written with `h11`, a strict parser independent of the
proxy's own (hyper). A case passes when

  1. the client saw one of the outcomes the case allows (statuses in order,
     whether the connection was closed),
  2. the upstream received exactly the messages that outcome allows (method,
     target, body bytes byte for byte), never one the client did not send as
     its own request (`/smuggled`, `/capture`), never bytes h11 refuses, and
     never an unfinished message unless the outcome allows an aborted one,
  3. the proxy's metrics agree with the upstream: requests it forwarded
     (delta of magma_requests_total - magma_requests_refused_total - the
     502/503/504 it answered itself) equal the messages the upstream received
     (where an aborted request is allowed: at least those, at most the
     requests the client sent), forwarded body bytes (delta of magma_request_size_bytes_sum) equal the
     body bytes the upstream received, every answer the client got is counted
     (magma_requests_total or magma_connection_errors_total{kind="protocol"}),
     and magma_tunnels_total moved only for a tunnelled upgrade,
  4. the case's own field checks hold (hop-by-hop fields, forwarding fields,
     x-request-id, Host).

The HTTP/1.1 cases then run through nginx in front of the same upstream; nginx
results are reported for comparison and never fail the run.

Usage: http_conformance.py [--bin PATH] [--nginx PATH] [--no-nginx]
                           [--only REGEX] [--markdown FILE] [-v]
Exit status: 0 when every magma-monitor case passes, 1 otherwise.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import h11
import h2.config
import h2.connection
import h2.events
import h2.exceptions

LOOPBACK = "127.0.0.1"
HEALTH_PATH = b"/health"
SMUGGLED = b"smuggled"

# --------------------------------------------------------------------------
# the upstream: h11 on raw sockets, one thread per connection
# --------------------------------------------------------------------------

# Exact response bytes for the response-side cases, by path. The request is
# read with h11 as usual; the answer bypasses h11.
RAW_RESPONSES = {
    # Content-Length 2, then a whole second response nobody asked for.
    b"/resp/extra": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!",
        False,
    ),
    # A body on an answer to HEAD.
    b"/resp/head-body": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", False),
    # A body on a 204 and on a 304 (neither may have one).
    b"/resp/204-body": (b"HTTP/1.1 204 No Content\r\n\r\nhello", False),
    b"/resp/304-body": (
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello",
        False,
    ),
    # Interim answers before the final one.
    b"/resp/1xx": (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine",
        False,
    ),
    # Both framings in a response.
    b"/resp/cl-te": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
        False,
    ),
    # Two different Content-Length values in a response.
    b"/resp/cl-dup": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 7\r\n\r\nokevil!",
        False,
    ),
    # The upstream closes after 3 of 10 promised bytes.
    b"/resp/early-close": (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", True),
    # The upstream closes in the middle of the head.
    b"/resp/partial-head": (b"HTTP/1.1 200 OK\r\nContent-Le", True),
    # A bare CR inside a field value (response splitting attempt).
    b"/resp/bare-cr": (
        b"HTTP/1.1 200 OK\r\nX-Split: a\rSet-Cookie: evil=1\r\n"
        b"Content-Length: 2\r\n\r\nok",
        False,
    ),
}

WS_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def normal_body(method, target):
    """The body of the upstream's ordinary 200: names the request it answers."""
    return b"ok " + method + b" " + target + b"\n"


class Msg:
    """One request as the upstream's h11 parser read it."""

    def __init__(self, seq, conn, method, target, version, headers):
        self.seq = seq
        self.conn = conn
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # [(raw name bytes, value bytes)] as sent
        self.body = bytearray()
        self.trailers = []
        self.complete = False
        self.error = None  # "incomplete" | "invalid: ..."

    def values(self, name):
        name = name.lower().encode() if isinstance(name, str) else name.lower()
        return [v for (n, v) in self.headers if n.lower() == name]

    def names(self):
        return [n for (n, _) in self.headers]

    def short(self):
        if self.method is None:
            return "<%s>" % self.error
        return "%s %s (%dB)" % (
            self.method.decode("latin-1"),
            self.target.decode("latin-1"),
            len(self.body),
        )


class Upstream:
    """Records every request it reads; answers 200 or the raw bytes above."""

    def __init__(self):
        self.lock = threading.Lock()
        self.msgs = []
        self.conn_seq = 0
        self.socks = set()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((LOOPBACK, 0))
        self.listener.listen(256)
        self.port = self.listener.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self):
        self.stopping = True
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass

    def mark(self):
        with self.lock:
            return len(self.msgs)

    def since(self, mark):
        with self.lock:
            return [m for m in self.msgs[mark:] if m.target != HEALTH_PATH]

    def snapshot(self, mark):
        with self.lock:
            return tuple(
                (m.seq, m.complete, len(m.body), m.error)
                for m in self.msgs[mark:]
                if m.target != HEALTH_PATH
            )

    def _accept(self):
        while not self.stopping:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.conn_seq += 1
                cid = self.conn_seq
                self.socks.add(sock)
            threading.Thread(target=self._serve, args=(sock, cid), daemon=True).start()

    def _record(self, msg):
        with self.lock:
            msg.seq = len(self.msgs)
            self.msgs.append(msg)

    def _serve(self, sock, cid):
        try:
            self._serve_inner(sock, cid)
        except OSError:
            pass
        finally:
            with self.lock:
                self.socks.discard(sock)
            try:
                sock.close()
            except OSError:
                pass

    def _serve_inner(self, sock, cid):
        conn = h11.Connection(h11.SERVER)
        cur = None
        eof = False
        while True:
            try:
                ev = conn.next_event()
            except h11.RemoteProtocolError as e:
                if cur is not None and not cur.complete:
                    # EOF inside a message: the proxy aborted it. Anything
                    # else: the proxy sent bytes a strict parser refuses.
                    cur.error = "incomplete" if eof else "invalid: %s" % e
                elif not eof or conn.trailing_data[0]:
                    bad = Msg(0, cid, None, None, None, [])
                    bad.error = "invalid: %s" % e
                    self._record(bad)
                return
            if ev is h11.NEED_DATA:
                if eof:
                    return
                data = sock.recv(65536)
                if not data:
                    eof = True
                conn.receive_data(data)
                continue
            if isinstance(ev, h11.Request):
                cur = Msg(0, cid, ev.method, ev.target, ev.http_version, list(ev.headers.raw_items()))
                self._record(cur)
            elif isinstance(ev, h11.Data):
                cur.body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                cur.trailers = list(ev.headers.raw_items())
                cur.complete = True
                done = cur
                cur = None
                conn = self._answer(sock, conn, done)
                if conn is None:
                    return
            elif isinstance(ev, h11.ConnectionClosed):
                return
            else:  # h11.PAUSED: nothing more to read on this connection
                return

    def _answer(self, sock, conn, msg):
        """Answers `msg`; returns the h11 connection to go on with, or None."""
        path = msg.target.split(b"?", 1)[0]
        if path in RAW_RESPONSES:
            raw, close = RAW_RESPONSES[path]
            sock.sendall(raw)
            if close:
                return None
            # Whatever the proxy sends next is read by a fresh parser, so a
            # proxy that reuses this connection sees the extra bytes above.
            rest, closed = conn.trailing_data
            fresh = h11.Connection(h11.SERVER)
            fresh.receive_data(bytes(rest))
            if closed:
                fresh.receive_data(b"")
            return fresh
        if path == b"/ws" and msg.values("upgrade"):
            sock.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + WS_ACCEPT + b"\r\n\r\n"
            )
            rest, _ = conn.trailing_data
            if rest:
                sock.sendall(bytes(rest))
            while True:  # echo until the proxy closes
                data = sock.recv(65536)
                if not data:
                    return None
                sock.sendall(data)
        body = normal_body(msg.method, msg.target)
        out = conn.send(
            h11.Response(
                status_code=200,
                headers=[("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
        )
        out += conn.send(h11.Data(data=body))
        out += conn.send(h11.EndOfMessage())
        sock.sendall(out)
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            return conn
        return None


# --------------------------------------------------------------------------
# processes: magma-monitor instances and nginx, each started and stopped by PID
# --------------------------------------------------------------------------


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((LOOPBACK, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_open(port):
    try:
        socket.create_connection((LOOPBACK, port), timeout=0.2).close()
        return True
    except OSError:
        return False


def stop_process(proc, sig=signal.SIGTERM):
    if proc is None or proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, sig)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass


class Front:
    """Something the client talks to: a magma-monitor instance or nginx."""

    kind = "front"
    port = None
    proc = None
    error = None

    def metrics(self):
        return None

    def stop(self):
        stop_process(self.proc)


class Magma(Front):
    kind = "magma"

    def __init__(self, binary, upstream_port, extra, workdir, name):
        self.name = name
        self.port = free_port()
        self.admin = free_port()
        self.log_path = os.path.join(workdir, "magma-%s.log" % name)
        args = [
            binary,
            "--listen", "%s:%d" % (LOOPBACK, self.port),
            "--admin-listen", "%s:%d" % (LOOPBACK, self.admin),
            "--upstream", "http://%s:%d" % (LOOPBACK, upstream_port),
            "--health-interval", "200ms",
            "--log-level", "warn",
        ] + list(extra)
        self.args = args
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAGMA_MONITOR_")}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.error = "exited with %s: %s" % (self.proc.returncode, self.log_tail())
                return
            if port_open(self.port) and port_open(self.admin):
                break
            time.sleep(0.05)
        else:
            self.error = "ports not open after 20s: " + self.log_tail()
            return
        # Ready means the proxy has seen the upstream healthy.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                    "http://%s:%d/readyz" % (LOOPBACK, self.admin), timeout=1
                ) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.05)

    def log_tail(self):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        text = re.sub(r"\x1b\[[0-9;]*m", "", text).strip().splitlines()
        return " | ".join(text[-3:])[-400:]

    def metrics(self):
        url = "http://%s:%d/metrics" % (LOOPBACK, self.admin)
        for _ in range(20):
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    return parse_metrics(r.read().decode("utf-8", "replace"))
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("cannot read %s" % url)


METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse_metrics(text):
    """Sums of the series the verdict uses, over all their label sets."""
    out = {
        "requests": 0.0,
        "refused": 0.0,
        "size_sum": 0.0,
        "protocol_errors": 0.0,
        "tunnels": 0.0,
    }
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = METRIC_LINE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        try:
            v = float(value)
        except ValueError:
            continue
        if name == "magma_requests_total":
            out["requests"] += v
        elif name == "magma_requests_refused_total":
            out["refused"] += v
        elif name == "magma_request_size_bytes_sum":
            out["size_sum"] += v
        elif name == "magma_connection_errors_total" and 'kind="protocol"' in labels:
            out["protocol_errors"] += v
        elif name == "magma_tunnels_total":
            out["tunnels"] += v
    return out


NGINX_CONF = """\
worker_processes 1;
daemon off;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream conformance_upstream {{
        server {loopback}:{upstream};
        keepalive 8;
    }}
    server {{
        listen {loopback}:{port};
        server_name conformance.local;
        location / {{
            proxy_pass http://conformance_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_request_buffering off;
        }}
    }}
}}
"""


class Nginx(Front):
    kind = "nginx"

    def __init__(self, binary, upstream_port, workdir):
        self.name = "nginx"
        self.dir = os.path.join(workdir, "nginx")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        user = "user root;" if os.geteuid() == 0 else ""
        with open(conf, "w") as f:
            f.write(
                NGINX_CONF.format(
                    user=user, dir=self.dir, loopback=LOOPBACK, upstream=upstream_port, port=self.port
                )
            )
        self.version = "nginx"
        try:
            v = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10)
            found = re.search(r"nginx/(\S+)", v.stderr + v.stdout)
            if found:
                self.version = "nginx " + found.group(1)
        except (OSError, subprocess.TimeoutExpired):
            pass
        log = open(os.path.join(self.dir, "stdout.log"), "wb")
        self.proc = subprocess.Popen(
            [binary, "-p", self.dir, "-c", conf, "-e", os.path.join(self.dir, "error.log")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.error = "nginx exited with %s" % self.proc.returncode
                return
            if port_open(self.port):
                return
            time.sleep(0.05)
        self.error = "nginx did not open its port"

    def stop(self):
        # SIGQUIT: graceful stop of the master, which stops its worker.
        stop_process(self.proc, signal.SIGQUIT)


# --------------------------------------------------------------------------
# the client side
# --------------------------------------------------------------------------


class Response:
    def __init__(self):
        self.status = None
        self.headers = []  # [(lowercase name, value)]
        self.body = b""
        self.info = []  # interim statuses
        self.truncated = False
        self.invalid = None

    def values(self, name):
        name = name.lower().encode()
        return [v for (n, v) in self.headers if n == name]

    def token(self):
        if self.invalid:
            return "bad"
        if self.status is None:
            return "-"
        return str(self.status) + ("~" if self.truncated else "")


class H1Client:
    """A raw TCP connection; responses are read with an h11 client parser."""

    def __init__(self, port):
        self.sock = socket.create_connection((LOOPBACK, port), timeout=3)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False
        self.reset = False

    def send(self, data):
        if self.eof:
            return False
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self.eof = True
            self.reset = True
            return False

    def shutdown_write(self):
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _recv(self, timeout):
        """Bytes, b"" at EOF, or None when nothing came within timeout."""
        if self.eof:
            return b""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return None
        except OSError:
            self.reset = True
            data = b""
        if not data:
            self.eof = True
        return data

    def read_response(self, method="GET", upgrade=False, timeout=2.0):
        """The next response, or None when none came (closed or timed out)."""
        parser = h11.Connection(h11.CLIENT)
        headers = [("Host", "client")]
        if upgrade:
            headers += [("Connection", "upgrade"), ("Upgrade", "websocket")]
        parser.send(h11.Request(method=method, target="/", headers=headers))
        parser.send(h11.EndOfMessage())
        fed_eof = False
        if self.buf:
            parser.receive_data(self.buf)
            self.buf = b""
        resp = Response()
        deadline = time.monotonic() + timeout
        while True:
            try:
                ev = parser.next_event()
            except h11.RemoteProtocolError as e:
                if fed_eof and resp.status is not None:
                    resp.truncated = True
                    return resp
                if fed_eof and resp.status is None and not resp.info:
                    return None
                resp.invalid = str(e)
                return resp
            if ev is h11.NEED_DATA:
                if fed_eof:
                    return resp if resp.status is not None else None
                left = deadline - time.monotonic()
                if left <= 0:
                    if resp.status is not None:
                        resp.truncated = True
                        return resp
                    return None
                data = self._recv(left)
                if data is None:
                    continue
                if not data:
                    fed_eof = True
                parser.receive_data(data)
                continue
            if ev is h11.PAUSED:  # after a 101: the rest is tunnel bytes
                self.buf = bytes(parser.trailing_data[0])
                return resp
            if isinstance(ev, h11.InformationalResponse):
                resp.info.append(ev.status_code)
                if ev.status_code == 101:
                    resp.status = 101
                    resp.headers = list(ev.headers)
            elif isinstance(ev, h11.Response):
                resp.status = ev.status_code
                resp.headers = list(ev.headers)
            elif isinstance(ev, h11.Data):
                resp.body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                self.buf = bytes(parser.trailing_data[0])
                return resp
            elif isinstance(ev, h11.ConnectionClosed):
                return resp if resp.status is not None else None

    def read_raw(self, n, timeout=2.0):
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            data = self._recv(left)
            if data is None:
                continue
            if not data:
                break
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def finish(self, wait):
        """(closed, unsolicited bytes) after the exchanges of a case."""
        extra = self.buf
        deadline = time.monotonic() + wait
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            data = self._recv(left)
            if data is None:
                break
            extra += data
        try:
            self.sock.close()
        except OSError:
            pass
        return self.eof, extra


def h2_exchange(port, headers, body=None, timeout=2.0):
    """One HTTP/2 stream with prior knowledge; returns a Response-like object."""
    cfg = h2.config.H2Configuration(
        client_side=True,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
    )
    conn = h2.connection.H2Connection(config=cfg)
    conn.initiate_connection()
    resp = Response()
    resp.reset = None
    resp.goaway = None
    sock = socket.create_connection((LOOPBACK, port), timeout=3)
    try:
        sock.sendall(conn.data_to_send())
        end = body is None
        conn.send_headers(1, headers, end_stream=end)
        if body is not None:
            conn.send_data(1, body, end_stream=True)
        sock.sendall(conn.data_to_send())
        deadline = time.monotonic() + timeout
        done = False
        ended = False
        while not done:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except socket.timeout:
                break
            except OSError:
                data = b""
            if not data:
                resp.goaway = resp.goaway or "EOF"
                break
            try:
                events = conn.receive_data(data)
            except h2.exceptions.ProtocolError as e:
                resp.invalid = "h2: %s" % e
                break
            for ev in events:
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == 1:
                    resp.headers = [(bytes(n).lower(), bytes(v)) for (n, v) in ev.headers]
                    for n, v in resp.headers:
                        if n == b":status":
                            resp.status = int(v)
                elif isinstance(ev, h2.events.InformationalResponseReceived):
                    resp.info.append(ev.headers)
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == 1:
                    resp.body += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == 1:
                    done = ended = True
                elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == 1:
                    # A reset after a complete response (e.g. NO_ERROR for an
                    # unread request body) does not change the answer.
                    if not ended:
                        resp.reset = getattr(ev.error_code, "name", str(ev.error_code))
                    done = True
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    resp.goaway = getattr(ev.error_code, "name", str(ev.error_code))
                    done = True
            out = conn.data_to_send()
            if out:
                try:
                    sock.sendall(out)
                except OSError:
                    break
    finally:
        sock.close()
    return resp


def h2_token(resp):
    if resp.invalid:
        return "bad"
    if resp.status is not None and resp.reset is None:
        return str(resp.status)
    if resp.status is not None and resp.reset is not None:
        return "%d+RST" % resp.status
    if resp.reset is not None:
        return "RST"
    if resp.goaway is not None:
        return "GOAWAY"
    return "-"


# --------------------------------------------------------------------------
# cases: what is sent and which outcomes are allowed
# --------------------------------------------------------------------------


class M:
    """An upstream message an outcome allows: method, target, exact body."""

    def __init__(self, method, target, body=b""):
        self.method = method.encode() if isinstance(method, str) else method
        self.target = target.encode() if isinstance(target, str) else target
        self.body = body

    def matches(self, msg):
        return msg.method == self.method and msg.target == self.target and bytes(msg.body) == self.body

    def short(self):
        return "%s %s (%dB)" % (self.method.decode(), self.target.decode("latin-1"), len(self.body))


def token_matches(pattern, token):
    for alt in pattern.split("|"):
        if alt == "*" or alt == token:
            return True
        if len(alt) == 3 and alt.endswith("xx") and token[:1] == alt[0] and token[1:3].isdigit() and len(token) == 3:
            return True
    return False


class A:
    """One allowed outcome: the client's statuses (space separated, in order;
    alternatives with |, 4xx for a class, ~ for a truncated body, RST/GOAWAY
    for HTTP/2), whether the connection must be closed (True), must stay open
    (False) or either (None), and the complete messages the upstream may
    receive (in order); aborted=True also allows unfinished ones."""

    def __init__(self, statuses, close=None, msgs=(), aborted=False):
        self.statuses = statuses.split()
        self.close = close
        self.msgs = list(msgs)
        self.aborted = aborted
        # Allowed only as the keep-alive race of the response-side cases.
        self.race = False

    def match_client(self, tokens, closed):
        if len(tokens) != len(self.statuses):
            return False
        if not all(token_matches(p, t) for p, t in zip(self.statuses, tokens)):
            return False
        return self.close is None or closed is None or self.close == closed

    def match_upstream(self, complete, aborted):
        if aborted and not self.aborted:
            return False
        if len(complete) != len(self.msgs):
            return False
        return all(e.matches(m) for e, m in zip(self.msgs, complete))

    def describe(self):
        client = " ".join(self.statuses) or "no answer"
        if self.close is True:
            client += " +close"
        elif self.close is False:
            client += " +open"
        up = ", ".join(m.short() for m in self.msgs) or "nothing"
        if self.aborted:
            up += " (+aborted ok)"
        return "%s; upstream: %s" % (client, up)


class Step:
    """Bytes written on client connection `conn`, then `methods` responses
    read (one per request the client meant to send; the method tells the
    reader whether a body follows, as for HEAD). `echo`: after a 101, bytes
    sent through the tunnel that must come back unchanged."""

    def __init__(self, data, methods=("GET",), conn=0, upgrade=False, timeout=2.0, shutdown=False, echo=None):
        self.data = data
        self.methods = list(methods)
        self.conn = conn
        self.upgrade = upgrade
        self.timeout = timeout
        self.shutdown = shutdown
        self.echo = echo


class Case:
    def __init__(
        self,
        cid,
        rfc,
        title,
        steps,
        allowed,
        check=None,
        instance="default",
        proto="h1",
        tunnels=0,
        resp_side=False,
    ):
        self.id = cid
        self.rfc = rfc
        self.title = title
        if isinstance(steps, bytes):
            steps = [Step(steps)]
        self.steps = steps  # for h2: (headers, body)
        self.allowed = allowed
        self.check = check
        self.instance = instance
        self.proto = proto
        self.tunnels = tunnels
        self.resp_side = resp_side


def raw(*lines, body=b""):
    """A message head from lines (str or bytes) joined by CRLF, then body."""
    out = b""
    for line in lines:
        out += (line.encode("latin-1") if isinstance(line, str) else line) + b"\r\n"
    return out + b"\r\n" + body


SMUG = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"  # 35 bytes
CAPTURE = b"POST /capture HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n"
INNOCENT = raw("GET /innocent HTTP/1.1", "Host: h", "Cookie: session=victim")
HELLO_CHUNKED = b"5\r\nhello\r\n0\r\n\r\n"

OK = lambda target="/x", method="GET", body=b"": A("200", msgs=[M(method, target, body)])
REFUSED_400 = A("400")


def refused(statuses="400", close=None, aborted=False):
    return A(statuses, close=close, aborted=aborted)


# -- field checks ------------------------------------------------------------


def list_values(msg, name):
    out = []
    for v in msg.values(name):
        out += [p.strip() for p in v.split(b",") if p.strip()]
    return out


def final_responses(run):
    return [r for r in run.responses if r.status is not None and r.status >= 200 and not r.invalid]


def check_absent(*names):
    def check(run, complete):
        p = []
        for m in complete:
            for n in names:
                if m.values(n):
                    p.append("upstream got %s: %r" % (n, m.values(n)))
        return p

    return check


def check_connection_tokens(*tokens):
    """Client Connection options must not reach the upstream."""

    def check(run, complete):
        p = []
        for m in complete:
            got = [t.lower() for t in list_values(m, "connection")]
            for t in tokens:
                if t.lower().encode() in got:
                    p.append("upstream Connection carries the client's option %s" % t)
        return p

    return check


def check_values(name, expected):
    """The upstream's `name` field, split on commas, equals `expected`."""

    def check(run, complete):
        p = []
        for m in complete:
            got = list_values(m, name)
            if got != expected:
                p.append("upstream %s is %r, want %r" % (name, got, expected))
        return p

    return check


def check_contains(name, value):
    def check(run, complete):
        p = []
        for m in complete:
            if not any(value in v for v in m.values(name)):
                p.append("upstream %s %r lacks %r" % (name, m.values(name), value))
        return p

    return check


def check_host(expected):
    def check(run, complete):
        p = []
        for m in complete:
            if m.values("host") != [expected]:
                p.append("upstream Host is %r, want [%r]" % (m.values("host"), expected))
        return p

    return check


def check_te_trailers_only(run, complete):
    p = []
    for m in complete:
        bad = [v for v in m.values("te") if v.strip().lower() != b"trailers"]
        if bad:
            p.append("upstream got TE %r" % bad)
    return p


def check_no_underscore(run, complete):
    p = []
    for m in complete:
        bad = [n for n in m.names() if b"_" in n]
        if bad:
            p.append("upstream got underscore fields %r" % bad)
    return p


def check_has_field(name):
    def check(run, complete):
        p = []
        for m in complete:
            if not any(n == name for n in m.names()) and not m.values(name):
                p.append("upstream lacks %s (has %r)" % (name.decode(), m.names()))
        return p

    return check


def check_request_id(run, complete):
    p = []
    up_ids = []
    for m in complete:
        ids = m.values("x-request-id")
        if len(ids) != 1:
            p.append("upstream got %d x-request-id fields: %r" % (len(ids), ids))
        up_ids.append(ids)
    finals = final_responses(run)
    if complete and finals:
        got = finals[0].values("x-request-id")
        if len(got) != 1:
            p.append("client's response has %d x-request-id fields: %r" % (len(got), got))
        elif len(up_ids[0]) == 1 and got[0] != up_ids[0][0]:
            p.append("x-request-id differs: upstream %r, response %r" % (up_ids[0][0], got[0]))
    return p


def check_bodies(*expected):
    """Response bodies in order (None: not checked)."""

    def check(run, complete):
        p = []
        finals = [r for r in run.responses if r.status is not None and r.status >= 200]
        for i, want in enumerate(expected):
            if want is None or i >= len(finals):
                continue
            if finals[i].status in (502, 503, 504) and b'"error":"upstream_' in finals[i].body:
                continue  # the proxy's own answer; the outcome says whether it is allowed
            if finals[i].body != want:
                p.append("response %d body %r, want %r" % (i + 1, finals[i].body[:60], want))
        return p

    return check


def check_no_response_field(name):
    def check(run, complete):
        p = []
        for r in run.responses:
            if r.values(name):
                p.append("client got %s: %r" % (name, r.values(name)))
        return p

    return check


def check_echo(run, complete):
    return [] if run.echo_ok else ["tunnel did not echo the bytes sent through it"]


def all_of(*checks):
    def check(run, complete):
        p = []
        for c in checks:
            p += c(run, complete)
        return p

    return check


# -- the catalogue -----------------------------------------------------------


def build_cases():
    C = []
    add = C.append
    H = "Host: h"

    # ---- framing and smuggling (RFC 9112 §6, RFC 9110 §7.6.1) ----
    add(Case(
        "smuggle-connection-content-length", "9110 §7.6.1, 9112 §6.3",
        "Connection: Content-Length must not strip the body's framing",
        raw("POST /x HTTP/1.1", H, "Connection: Content-Length", "Content-Length: 35", body=SMUG),
        [A("200", msgs=[M("POST", "/x", SMUG)])],
    ))
    add(Case(
        "smuggle-connection-transfer-encoding", "9110 §7.6.1, 9112 §7.1",
        "Connection: Transfer-Encoding must not strip the chunked framing",
        raw("POST /x HTTP/1.1", H, "Connection: Transfer-Encoding", "Transfer-Encoding: chunked",
            body=b"23\r\n" + SMUG + b"\r\n0\r\n\r\n"),
        [A("200", msgs=[M("POST", "/x", SMUG)])],
    ))
    poisoned = raw("POST /x HTTP/1.1", H, "Connection: Content-Length",
                   "Content-Length: %d" % len(CAPTURE), body=CAPTURE)
    add(Case(
        "capture-same-connection", "9110 §7.6.1, 9112 §6.3",
        "a smuggled POST /capture must not swallow the next request",
        [Step(poisoned), Step(INNOCENT)],
        [A("200 200", msgs=[M("POST", "/x", CAPTURE), M("GET", "/innocent")])],
    ))
    add(Case(
        "capture-co-tenant", "9110 §7.6.1, 9112 §6.3",
        "a smuggled POST /capture must not swallow another client's request",
        [Step(poisoned), Step(INNOCENT, conn=1)],
        [A("200 200", msgs=[M("POST", "/x", CAPTURE), M("GET", "/innocent")])],
    ))
    cl_te_body = b"0\r\n\r\n" + SMUG
    add(Case(
        "cl-then-te", "9112 §6.1, §6.3",
        "Content-Length and Transfer-Encoding together",
        raw("POST /x HTTP/1.1", H, "Content-Length: %d" % len(cl_te_body), "Transfer-Encoding: chunked",
            body=cl_te_body),
        # RFC 9112 §6.1 allows either: refuse, or read by Transfer-Encoding
        # alone and close the connection after answering. hyper does the
        # latter; what follows the last chunk is never read as a request.
        [refused("400", close=True), A("200", close=True, msgs=[M("POST", "/x", b"")])],
    ))
    add(Case(
        "te-then-cl", "9112 §6.1, §6.3",
        "Transfer-Encoding and a short Content-Length together",
        raw("POST /x HTTP/1.1", H, "Transfer-Encoding: chunked", "Content-Length: 4",
            body=b"23\r\n" + SMUG + b"\r\n0\r\n\r\n"),
        [refused("400", close=True), A("200", close=True, msgs=[M("POST", "/x", SMUG)])],
    ))
    hs = b"hello" + SMUG  # 40 bytes: 5 for a first-value reader, 40 for a last-value one
    for cid, fields in [
        ("cl-duplicate-differing", ["Content-Length: 5", "Content-Length: 40"]),
        ("cl-list-differing", ["Content-Length: 5, 40"]),
    ]:
        add(Case(cid, "9112 §6.3", "Content-Length values that disagree",
                 raw("POST /x HTTP/1.1", H, *fields, body=hs), [refused("400")]))
    for cid, fields in [
        ("cl-duplicate-identical", ["Content-Length: 5", "Content-Length: 5"]),
        ("cl-list-identical", ["Content-Length: 5, 5"]),
    ]:
        add(Case(cid, "9112 §6.3, 9110 §8.6", "identical Content-Length values",
                 raw("POST /x HTTP/1.1", H, *fields, body=b"hello"),
                 [refused("400"), OK("/x", "POST", b"hello")]))
    for cid, value in [
        ("cl-non-numeric", "abc"),
        ("cl-plus-sign", "+5"),
        ("cl-negative", "-5"),
        ("cl-hex", "0x5"),
    ]:
        add(Case(cid, "9110 §8.6", "Content-Length: %s" % value,
                 raw("POST /x HTTP/1.1", H, "Content-Length: " + value, body=b"hello"),
                 [refused("400")]))
    add(Case(
        "cl-body-truncated", "9112 §6.3, §8",
        "the client closes before Content-Length bytes arrived",
        [Step(raw("POST /x HTTP/1.1", H, "Content-Length: 10", body=b"hello"), shutdown=True, timeout=1.5)],
        [A("", aborted=True), A("4xx|5xx", aborted=True)],
    ))

    # ---- transfer codings (RFC 9112 §6.1, §7) ----
    for cid, value in [
        ("te-gzip-chunked", "gzip, chunked"),
        ("te-chunked-gzip", "chunked, gzip"),
        ("te-identity", "identity"),
        ("te-xchunked", "xchunked"),
        ("te-chunked-chunked", "chunked, chunked"),
    ]:
        add(Case(cid, "9112 §6.1", "Transfer-Encoding: %s" % value,
                 raw("POST /x HTTP/1.1", H, "Transfer-Encoding: " + value, body=HELLO_CHUNKED),
                 [refused("400|501", close=True)]))
    consistent = OK("/x", "POST", b"hello")
    for cid, rfc, title, data in [
        ("te-duplicate-lines", "9112 §6.1", "Transfer-Encoding: chunked twice",
         raw("POST /x HTTP/1.1", H, "Transfer-Encoding: chunked", "Transfer-Encoding: chunked", body=HELLO_CHUNKED)),
        ("te-space-before-colon", "9112 §5.1", "Transfer-Encoding : chunked",
         raw("POST /x HTTP/1.1", H, "Transfer-Encoding : chunked", body=HELLO_CHUNKED)),
        ("te-obs-fold", "9112 §5.2", "Transfer-Encoding folded onto a continuation line",
         raw("POST /x HTTP/1.1", H, "Transfer-Encoding:", " chunked", body=HELLO_CHUNKED)),
        ("te-vertical-tab", "9110 §5.5", "Transfer-Encoding: \\x0bchunked",
         raw("POST /x HTTP/1.1", H, b"Transfer-Encoding: \x0bchunked", body=HELLO_CHUNKED)),
        ("te-bare-lf", "9112 §2.2", "every line ended by a bare LF",
         b"POST /x HTTP/1.1\nHost: h\nTransfer-Encoding: chunked\n\n5\nhello\n0\n\n"),
        ("te-uppercase", "9112 §7", "Transfer-Encoding: Chunked",
         raw("POST /x HTTP/1.1", H, "Transfer-Encoding: Chunked", body=HELLO_CHUNKED)),
    ]:
        add(Case(cid, rfc, title, [Step(data, timeout=1.5)],
                 [refused("4xx|5xx", aborted=True), A("", aborted=True), consistent]))
    add(Case(
        "te-http10", "9112 §6.1", "Transfer-Encoding in an HTTP/1.0 request",
        raw("POST /x HTTP/1.0", H, "Transfer-Encoding: chunked", body=HELLO_CHUNKED),
        [refused("400")],
    ))

    # ---- chunked coding (RFC 9112 §7.1) ----
    add(Case(
        "chunked-extensions-trailers", "9112 §7.1.1, §7.1.2",
        "valid chunked upload with extensions and a trailer",
        raw("POST /x HTTP/1.1", H, "Transfer-Encoding: chunked",
            body=b'5;name=val\r\nhello\r\n6;q="a b"\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n'),
        [OK("/x", "POST", b"hello world")],
    ))
    bad_chunks = [
        ("chunk-size-overflow", "chunk size ffffffffffffffffff", b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n", False),
        ("chunk-size-negative", "chunk size -5", b"-5\r\nhello\r\n0\r\n\r\n", False),
        ("chunk-size-leading-space", "chunk size ' 5'", b" 5\r\nhello\r\n0\r\n\r\n", False),
        ("chunk-size-trailing-space", "chunk size '5 '", b"5 \r\nhello\r\n0\r\n\r\n", True),
        ("chunk-size-0x", "chunk size 0x5", b"0x5\r\nhello\r\n0\r\n\r\n", False),
        ("chunk-ext-bare-lf", "chunk extension ended by a bare LF", b"5;a\nhello\r\n0\r\n\r\n", False),
        # hyper takes the extension off and re-frames the body: the upstream
        # never sees it, so no second reading of it exists.
        ("chunk-ext-control", "control bytes in a chunk extension", b"5;a\x01\x7fb\r\nhello\r\n0\r\n\r\n", True),
        ("chunk-data-no-crlf", "chunk data not followed by CRLF", b"5\r\nhelloXX0\r\n\r\n", False),
        # Forwarded with the body, or refused; the trailer fields never
        # reach the upstream as framing or as Host (check below).
        ("chunk-trailer-forbidden", "Content-Length and Host in the trailer section",
         b"5\r\nhello\r\n0\r\nContent-Length: 99\r\nHost: evil\r\n\r\n", True),
    ]
    for cid, title, body, strict_ok in bad_chunks:
        allowed = [refused("4xx|5xx", aborted=True), A("", aborted=True)]
        if strict_ok:  # the upstream gets 'hello', framed anew
            allowed.append(consistent)
        add(Case(cid, "9112 §7.1", title,
                 [Step(raw("POST /x HTTP/1.1", H, "Transfer-Encoding: chunked", body=body), timeout=1.5)],
                 allowed,
                 check=check_host(b"h") if cid == "chunk-trailer-forbidden" else None))

    # ---- pipelining and keep-alive (RFC 9112 §9.3) ----
    p1 = raw("GET /p1 HTTP/1.1", H)
    p2 = raw("POST /p2 HTTP/1.1", H, "Content-Length: 5", body=b"hello")
    p3 = raw("GET /p3 HTTP/1.1", H)
    three = [M("GET", "/p1"), M("POST", "/p2", b"hello"), M("GET", "/p3")]
    order = check_bodies(normal_body(b"GET", b"/p1"), normal_body(b"POST", b"/p2"), normal_body(b"GET", b"/p3"))
    add(Case("pipelined-three", "9112 §9.3.2", "three requests in one write",
             [Step(p1 + p2 + p3, methods=["GET", "POST", "GET"])],
             [A("200 200 200", close=False, msgs=three)], check=order))
    add(Case("keep-alive-reuse", "9112 §9.3", "three requests one after another on one connection",
             [Step(p1), Step(p2, methods=["POST"]), Step(p3)],
             [A("200 200 200", close=False, msgs=three)], check=order))
    add(Case("pipelined-chunked", "9112 §9.3.2, §7.1", "a chunked request and a GET in one write",
             [Step(raw("POST /c1 HTTP/1.1", H, "Transfer-Encoding: chunked", body=HELLO_CHUNKED)
                   + raw("GET /c2 HTTP/1.1", H), methods=["POST", "GET"])],
             [A("200 200", close=False, msgs=[M("POST", "/c1", b"hello"), M("GET", "/c2")])],
             check=check_bodies(normal_body(b"POST", b"/c1"), normal_body(b"GET", b"/c2"))))
    big = bytes(range(256)) * 400  # 102400 bytes, every byte value
    add(Case("body-100k-exact", "9112 §6.2", "a 100 KiB body with every byte value",
             raw("POST /big HTTP/1.1", H, "Content-Length: %d" % len(big), body=big),
             [OK("/big", "POST", big)]))

    # ---- Host (RFC 9112 §3.2) ----
    add(Case("host-missing", "9112 §3.2", "HTTP/1.1 request without Host",
             raw("GET /x HTTP/1.1"), [refused("400")]))
    add(Case("host-twice-differing", "9112 §3.2", "two Host lines",
             raw("GET /x HTTP/1.1", "Host: a", "Host: b"), [refused("400")]))
    add(Case("host-twice-identical", "9112 §3.2", "two identical Host lines",
             raw("GET /x HTTP/1.1", "Host: h", "Host: h"), [refused("400")]))
    for cid, value in [
        ("host-space", "a b"),
        ("host-userinfo", "h@evil"),
        ("host-slash", "h/x"),
        ("host-bad-port", "h:port"),
    ]:
        add(Case(cid, "9112 §3.2, 3986 §3.2", "Host: %s" % value,
                 raw("GET /x HTTP/1.1", "Host: " + value), [refused("400")]))
    add(Case("absolute-form-host", "9112 §3.2.2", "absolute-form target overrides Host",
             raw("GET http://a.example/p HTTP/1.1", "Host: b.example"),
             [OK("/p")], check=check_host(b"a.example")))
    add(Case("http10-no-host", "9112 §3.2", "HTTP/1.0 without Host is forwarded",
             raw("GET /x HTTP/1.0"), [OK("/x")]))

    # ---- upgrades (RFC 9110 §7.8) ----
    ws = raw("GET /ws HTTP/1.1", H, "Connection: Upgrade", "Upgrade: websocket",
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13")
    add(Case("websocket-tunnel", "9110 §7.8, 6455 §4",
             "allowed websocket upgrade is tunnelled",
             [Step(ws, upgrade=True, echo=b"ping through the tunnel")],
             [A("101", msgs=[M("GET", "/ws")])],
             check=all_of(check_echo, check_contains("upgrade", b"websocket"),
                          check_contains("connection", b"pgrade")),
             tunnels=1))
    after = raw("GET /after HTTP/1.1", H)
    for cid, title, fields, absent in [
        ("upgrade-h2c", "Upgrade: h2c is not switched",
         ["Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"],
         ("upgrade", "http2-settings")),
        ("upgrade-unknown", "Upgrade to an unlisted protocol is not switched",
         ["Connection: Upgrade", "Upgrade: foo/1"], ("upgrade",)),
    ]:
        add(Case(cid, "9110 §7.8, 9113 §3.1", title,
                 [Step(raw("GET /x HTTP/1.1", H, *fields), upgrade=True), Step(after)],
                 [A("200 200", close=False, msgs=[M("GET", "/x"), M("GET", "/after")])],
                 check=all_of(check_absent(*absent),
                              check_bodies(normal_body(b"GET", b"/x"), normal_body(b"GET", b"/after")))))
    add(Case("websocket-declined", "9110 §7.8", "upstream declines the upgrade with 200",
             [Step(raw("GET /x HTTP/1.1", H, "Connection: Upgrade", "Upgrade: websocket",
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"),
                   upgrade=True), Step(after)],
             [A("200 200", msgs=[M("GET", "/x"), M("GET", "/after")])],
             check=check_bodies(normal_body(b"GET", b"/x"), normal_body(b"GET", b"/after"))))

    # ---- methods (RFC 9110 §9.3.6, §9.3.8) ----
    add(Case("method-connect", "9110 §9.3.6", "CONNECT is refused",
             raw("CONNECT a.example:443 HTTP/1.1", "Host: a.example:443"), [refused("405")]))
    add(Case("method-trace", "9110 §9.3.8", "TRACE is refused",
             raw("TRACE /x HTTP/1.1", H), [refused("405")]))

    # ---- request target bytes (RFC 9112 §3.2, RFC 3986 §2) ----
    for cid, target in [
        ("target-non-ascii", b"/caf\xc3\xa9"),
        ("target-control", b"/a\x01b"),
        ("target-del", b"/a\x7fb"),
        ("target-dquote", b'/a"b'),
        ("target-lt", b"/a<b"),
        ("target-gt", b"/a>b"),
        ("target-backslash", b"/a\\b"),
        ("target-caret", b"/a^b"),
        ("target-backtick", b"/a`b"),
        ("target-lbrace", b"/a{b"),
        ("target-pipe", b"/a|b"),
        ("target-rbrace", b"/a}b"),
        ("target-bad-percent", b"/a%zzb"),
    ]:
        add(Case(cid, "9112 §3.2, 3986 §2", "target %r" % target.decode("latin-1"),
                 raw(b"GET " + target + b" HTTP/1.1", H), [refused("400")]))

    # The http crate takes a fragment off the target before the proxy sees
    # it, so the proxy, its metrics and the upstream all read '/a'.
    add(Case("target-fragment", "9112 §3.2, 3986 §3.5", "target '/a#b'",
             raw(b"GET /a#b HTTP/1.1", H), [refused("400"), OK("/a")]))

    # ---- Connection options and hop-by-hop fields (RFC 9110 §7.6.1) ----
    add(Case("connection-names-x-secret", "9110 §7.6.1", "a field named by Connection is removed",
             raw("GET /x HTTP/1.1", H, "Connection: X-Secret", "X-Secret: s3cret"),
             [OK()], check=all_of(check_absent("x-secret"), check_connection_tokens("x-secret"))))
    add(Case("connection-names-host", "9110 §7.6.1", "Connection: Host leaves Host in place",
             raw("GET /x HTTP/1.1", H, "Connection: Host"), [OK()], check=check_host(b"h")))
    add(Case("connection-names-xff", "9110 §7.6.1", "Connection: X-Forwarded-For leaves it in place",
             raw("GET /x HTTP/1.1", H, "Connection: X-Forwarded-For", "X-Forwarded-For: 1.2.3.4"),
             [OK()], check=check_values("x-forwarded-for", [b"1.2.3.4", b"127.0.0.1"])))
    add(Case("connection-names-request-id", "9110 §7.6.1", "Connection: X-Request-Id leaves one id",
             raw("GET /x HTTP/1.1", H, "Connection: X-Request-Id", "X-Request-Id: keep-me-123"),
             [OK()], check=check_request_id))
    add(Case("hop-by-hop-fields", "9110 §7.6.1", "Keep-Alive, Proxy-Connection, TE: gzip are removed",
             raw("GET /x HTTP/1.1", H, "Connection: keep-alive", "Keep-Alive: timeout=5",
                 "Proxy-Connection: keep-alive", "TE: gzip"),
             [OK()], check=all_of(check_absent("keep-alive", "proxy-connection", "te"),
                                  check_connection_tokens("keep-alive"))))
    add(Case("te-trailers-kept", "9110 §10.1.4", "TE: trailers may pass, nothing else",
             raw("GET /x HTTP/1.1", H, "Connection: TE", "TE: trailers"),
             [OK()], check=check_te_trailers_only))
    add(Case("upgrade-without-connection", "9110 §7.8", "Upgrade not named by Connection is removed",
             raw("GET /x HTTP/1.1", H, "Upgrade: foo/1"), [OK()], check=check_absent("upgrade")))

    # ---- forwarding fields (RFC 7239, de-facto X-Forwarded-*) ----
    spoof = ["X-Forwarded-For: 9.9.9.9", "X-Forwarded-Proto: https", "X-Forwarded-Host: evil.example",
             "Forwarded: for=1.2.3.4;proto=https"]
    add(Case("forwarded-untrusted", "7239 §4, 9110 §7.6", "an untrusted peer's forwarding fields",
             raw("GET /x HTTP/1.1", H, *spoof), [OK()],
             check=all_of(check_values("x-forwarded-proto", [b"http"]),
                          check_absent("forwarded", "x-forwarded-host"),
                          check_values("x-forwarded-for", [b"9.9.9.9", b"127.0.0.1"]))))
    add(Case("forwarded-none", "7239 §4", "no forwarding fields from the client",
             raw("GET /x HTTP/1.1", H), [OK()],
             check=all_of(check_values("x-forwarded-proto", [b"http"]),
                          check_values("x-forwarded-for", [b"127.0.0.1"]))))
    add(Case("forwarded-xff-two-lines", "9110 §5.3", "two X-Forwarded-For lines are joined in order",
             raw("GET /x HTTP/1.1", H, "X-Forwarded-For: 1.1.1.1", "X-Forwarded-For: 2.2.2.2, 3.3.3.3"),
             [OK()], check=check_values("x-forwarded-for", [b"1.1.1.1", b"2.2.2.2", b"3.3.3.3", b"127.0.0.1"])))
    add(Case("forwarded-trusted", "7239 §4", "a trusted peer's forwarding fields pass",
             raw("GET /x HTTP/1.1", H, "X-Forwarded-For: 9.9.9.9", "X-Forwarded-Proto: https",
                 "Forwarded: for=1.2.3.4;proto=https"), [OK()],
             check=all_of(check_values("x-forwarded-proto", [b"https"]),
                          check_contains("forwarded", b"for=1.2.3.4;proto=https"),
                          check_values("x-forwarded-for", [b"9.9.9.9", b"127.0.0.1"])),
             instance="trusted"))
    add(Case("underscore-dropped", "9110 §5.1", "field names with _ are dropped by default",
             raw("GET /x HTTP/1.1", H, "X_Forwarded_For: 1.2.3.4", "X_Secret: s"), [OK()],
             check=all_of(check_no_underscore, check_values("x-forwarded-for", [b"127.0.0.1"]))))
    add(Case("underscore-allowed", "9110 §5.1", "--allow-underscore-headers keeps them",
             raw("GET /x HTTP/1.1", H, "X_Secret: s"), [OK()],
             check=check_has_field(b"X_Secret"), instance="trusted"))

    # ---- x-request-id ----
    for cid, fields in [
        ("request-id-none", []),
        ("request-id-valid", ["X-Request-Id: abc-123"]),
        ("request-id-two", ["X-Request-Id: one", "X-Request-Id: two"]),
        ("request-id-malformed", ["X-Request-Id: <script>alert(1)</script> " + "x" * 300]),
    ]:
        add(Case(cid, "—", "x-request-id: %s" % (cid.split("-")[-1]),
                 raw("GET /x HTTP/1.1", H, *fields), [OK()], check=check_request_id))

    # ---- response side (RFC 9112 §6.3) ----
    nb_after = normal_body(b"GET", b"/after")
    add(Case("resp-bytes-past-content-length", "9112 §6.3",
             "bytes after the upstream's body are never an answer",
             [Step(raw("GET /resp/extra HTTP/1.1", H)), Step(after)],
             [A("200 200", msgs=[M("GET", "/resp/extra"), M("GET", "/after")])],
             check=check_bodies(b"ok", nb_after), resp_side=True))
    add(Case("resp-head-with-body", "9110 §9.3.2, 9112 §6.3", "a body on a HEAD answer",
             [Step(raw("HEAD /resp/head-body HTTP/1.1", H), methods=["HEAD"]), Step(after)],
             [A("200 200", msgs=[M("HEAD", "/resp/head-body"), M("GET", "/after")])],
             check=check_bodies(b"", nb_after), resp_side=True))
    for cid, path, status in [
        ("resp-204-with-body", "/resp/204-body", "204"),
        ("resp-304-with-body", "/resp/304-body", "304"),
    ]:
        add(Case(cid, "9112 §6.3", "a body on a %s" % status,
                 [Step(raw("GET %s HTTP/1.1" % path, H)), Step(after)],
                 [A(status + " 200", msgs=[M("GET", path), M("GET", "/after")])],
                 check=check_bodies(b"", nb_after), resp_side=True))
    add(Case("resp-interim-1xx", "9110 §15.2", "100 and 103 before the 200",
             [Step(raw("GET /resp/1xx HTTP/1.1", H)), Step(after)],
             [A("200 200", msgs=[M("GET", "/resp/1xx"), M("GET", "/after")])],
             check=check_bodies(b"fine", nb_after), resp_side=True))
    add(Case("resp-cl-and-te", "9112 §6.1, §6.3", "Content-Length and chunked in one response",
             [Step(raw("GET /resp/cl-te HTTP/1.1", H)), Step(after)],
             [A("502 200", msgs=[M("GET", "/resp/cl-te"), M("GET", "/after")]),
              A("502", close=True, msgs=[M("GET", "/resp/cl-te")]),
              A("200 200", msgs=[M("GET", "/resp/cl-te"), M("GET", "/after")])],
             check=check_bodies(None, nb_after), resp_side=True))
    add(Case("resp-cl-differing", "9112 §6.3", "two different Content-Length values in a response",
             [Step(raw("GET /resp/cl-dup HTTP/1.1", H)), Step(after)],
             [A("502 200", msgs=[M("GET", "/resp/cl-dup"), M("GET", "/after")]),
              A("502", close=True, msgs=[M("GET", "/resp/cl-dup")])],
             check=check_bodies(None, nb_after), resp_side=True))
    add(Case("resp-early-close", "9112 §6.3, §8", "upstream closes before Content-Length is reached",
             [Step(raw("GET /resp/early-close HTTP/1.1", H))],
             [A("200~", close=True, msgs=[M("GET", "/resp/early-close")]),
              A("502", msgs=[M("GET", "/resp/early-close")])],
             resp_side=True))
    add(Case("resp-partial-head", "9112 §8", "upstream closes inside the response head",
             [Step(raw("GET /resp/partial-head HTTP/1.1", H))],
             [A("502", msgs=[M("GET", "/resp/partial-head")])], resp_side=True))
    add(Case("resp-bare-cr-field", "9112 §2.2, 9110 §5.5", "a bare CR inside a response field value",
             [Step(raw("GET /resp/bare-cr HTTP/1.1", H))],
             [A("502", msgs=[M("GET", "/resp/bare-cr")])],
             check=check_no_response_field("set-cookie"), resp_side=True))

    # ---- HTTP/2 with prior knowledge (RFC 9113 §8) ----
    def h2req(method="GET", path="/x", authority="h2.example", extra=()):
        hs = [(b":method", method.encode()), (b":scheme", b"http"), (b":authority", authority.encode()),
              (b":path", path if isinstance(path, bytes) else path.encode())]
        return hs + [(n.encode(), v if isinstance(v, bytes) else v.encode()) for n, v in extra]

    h2_refused = A("400|RST")
    add(Case("h2-post", "9113 §8.3.1", "POST with a body; Host from :authority",
             (h2req("POST", "/h2post"), b"hello over h2"), [OK("/h2post", "POST", b"hello over h2")],
             check=check_host(b"h2.example"), proto="h2"))
    add(Case("h2-authority-host-differ", "9113 §8.3.1", ":authority and host differ",
             (h2req(extra=[("host", "b.example")]), None), [h2_refused], proto="h2"))
    add(Case("h2-connection-header", "9113 §8.2.2", "connection: keep-alive",
             (h2req(extra=[("connection", "keep-alive")]), None), [h2_refused], proto="h2"))
    add(Case("h2-transfer-encoding", "9113 §8.2.2", "transfer-encoding: chunked",
             (h2req("POST", extra=[("transfer-encoding", "chunked")]), b"5\r\nhello\r\n0\r\n\r\n"),
             [h2_refused], proto="h2"))
    add(Case("h2-te-gzip", "9113 §8.2.2", "te: gzip",
             (h2req(extra=[("te", "gzip")]), None), [h2_refused], proto="h2"))
    add(Case("h2-te-trailers", "9113 §8.2.2", "te: trailers is allowed",
             (h2req(extra=[("te", "trailers")]), None), [OK()], check=check_te_trailers_only, proto="h2"))
    add(Case("h2-connect", "9113 §8.5, 9110 §9.3.6", "CONNECT is refused",
             ([(b":method", b"CONNECT"), (b":authority", b"a.example:443")], None),
             [A("405|RST")], proto="h2"))
    add(Case("h2-underscore", "9110 §5.1", "field names with _ are dropped",
             (h2req(extra=[("x_secret", "s")]), None), [OK()], check=check_no_underscore, proto="h2"))
    add(Case("h2-path-space", "9113 §8.3.1, 3986", ":path with a space",
             (h2req(path=b"/a b"), None), [h2_refused], proto="h2"))
    add(Case("h2-path-non-ascii", "9113 §8.3.1, 3986", ":path with raw non-ASCII bytes",
             (h2req(path=b"/caf\xc3\xa9"), None), [h2_refused], proto="h2"))
    add(Case("h2-content-length-mismatch", "9113 §8.1.1", "content-length: 10 with 5 bytes of DATA",
             (h2req("POST", extra=[("content-length", "10")]), b"hello"),
             [A("4xx|5xx|RST|GOAWAY", aborted=True), A("", aborted=True)], proto="h2"))
    add(Case("h2-request-id-two", "—", "two x-request-id fields",
             (h2req(extra=[("x-request-id", "one"), ("x-request-id", "two")]), None),
             [OK()], check=check_request_id, proto="h2"))

    # Response-side cases send a second request on the same client
    # connection after an odd answer. That request may meet the kept
    # upstream connection as it closes (a keep-alive race, seen in a few
    # runs in a hundred after these raw answers) and get the proxy's own
    # 502: an error the client can retry, never a desynchronised answer.
    # The outcome is allowed here and reported as "race" in the table;
    # what the case tests (the first answer, nothing smuggled) still holds.
    for case in C:
        if not case.resp_side:
            continue
        for outcome in list(case.allowed):
            if len(outcome.statuses) == 2 and outcome.statuses[1] == "200" and len(outcome.msgs) == 2:
                raced = A(outcome.statuses[0] + " 502", msgs=outcome.msgs[:1])
                raced.race = True
                case.allowed.append(raced)
    return C


# --------------------------------------------------------------------------
# running and judging
# --------------------------------------------------------------------------


class Run:
    """What the client observed in one case."""

    def __init__(self):
        self.responses = []
        self.tokens = []
        self.closed = None  # of client connection 0
        self.extra = b""
        self.echo_ok = None
        self.error = None


def run_h1(case, front):
    run = Run()
    clients = {}
    try:
        for step in case.steps:
            client = clients.get(step.conn)
            if client is None:
                client = clients[step.conn] = H1Client(front.port)
            client.send(step.data)
            if step.shutdown:
                client.shutdown_write()
            for method in step.methods:
                resp = client.read_response(method, step.upgrade, step.timeout)
                if resp is None:
                    break
                run.responses.append(resp)
                if resp.invalid:
                    break
            if step.echo is not None:
                if run.responses and run.responses[-1].status == 101:
                    client.send(step.echo)
                    run.echo_ok = client.read_raw(len(step.echo)) == step.echo
                else:
                    run.echo_ok = False
        for idx, client in sorted(clients.items()):
            asked_close = any(
                b"close" in v.lower() for r in run.responses for v in r.values("connection")
            )
            closed, extra = client.finish(1.0 if asked_close else 0.25)
            if idx == 0:
                run.closed = closed
            run.extra += extra
    except OSError as e:
        run.error = "client socket error: %s" % e
    run.tokens = [r.token() for r in run.responses]
    return run


def run_h2(case, front):
    run = Run()
    headers, body = case.steps
    try:
        resp = h2_exchange(front.port, headers, body)
    except OSError as e:
        run.error = "client socket error: %s" % e
        return run
    run.responses = [resp]
    tok = h2_token(resp)
    run.tokens = [] if tok == "-" else [tok]
    return run


def settle(front, upstream, mark, magma):
    """Metrics and upstream record once they stop changing."""
    prev = None
    since = time.monotonic()
    deadline = since + 3.0
    while True:
        snap = (front.metrics() if magma else None, upstream.snapshot(mark))
        now = time.monotonic()
        if snap != prev:
            prev, since = snap, now
        elif now - since >= 0.12:
            return snap[0]
        if now > deadline:
            return snap[0]
        time.sleep(0.03)


def judge(case, run, msgs, before, after):
    """Problems found (empty: the case passes)."""
    problems = []
    if run.error:
        problems.append(run.error)
    complete = [m for m in msgs if m.method is not None and m.complete]
    aborted = [m for m in msgs if m.method is not None and not m.complete and not (m.error or "").startswith("invalid")]
    invalid = [m for m in msgs if m.method is None or (m.error or "").startswith("invalid")]
    for m in msgs:
        if m.target is not None and (SMUGGLED in m.target or m.target == b"/capture"):
            problems.append("upstream got a request the client never sent: %s" % m.short())
    for m in invalid:
        problems.append("upstream got bytes h11 refuses (%s)" % m.error)
    if run.extra:
        problems.append("client got %d unsolicited bytes: %r" % (len(run.extra), run.extra[:60]))
    for r in run.responses:
        if r.invalid:
            problems.append("client got an invalid response: %s" % r.invalid)
    matched = [
        a for a in case.allowed if a.match_client(run.tokens, run.closed) and a.match_upstream(complete, aborted)
    ]
    if not matched:
        problems.append(
            "outcome not allowed: client %s%s, upstream %s%s; allowed: %s"
            % (
                " ".join(run.tokens) or "no answer",
                "" if run.closed is None else (" +close" if run.closed else " +open"),
                ", ".join(m.short() for m in complete) or "nothing",
                (" + %d aborted" % len(aborted)) if aborted else "",
                " | ".join(a.describe() for a in case.allowed),
            )
        )
    if case.check:
        problems += case.check(run, complete)
    if before is not None and after is not None:
        abortable = any(a.aborted for a in matched)
        problems += judge_metrics(case, run, complete, aborted, abortable, before, after)
    return problems


def client_requests(case):
    if case.proto == "h2":
        return 1
    return sum(len(step.methods) for step in case.steps)


def client_bytes(case):
    if case.proto == "h2":
        return len(case.steps[1] or b"")
    return sum(len(step.data) for step in case.steps)


def judge_metrics(case, run, complete, aborted, abortable, before, after):
    """`abortable`: the outcome allows an aborted request, whose body may
    fail inside the proxy before any of it reaches the upstream; it may then
    be counted as forwarded without the upstream seeing it."""
    d = {k: after[k] - before[k] for k in after}
    problems = []
    finals = [r for r in run.responses if r.status is not None and not r.invalid]
    # The upstream never answers 5xx outside the response-side cases; there,
    # a 5xx is the proxy's when it carries the proxy's own JSON error.
    proxy_5xx = sum(
        1 for r in finals
        if r.status in (502, 503, 504)
        and (not case.resp_side or b'"error":"upstream_' in (r.body or b""))
    )
    forwarded_hi = d["requests"] - d["refused"]
    forwarded_lo = forwarded_hi - proxy_5xx
    lo = max(forwarded_lo, len(complete))
    hi = min(forwarded_hi, len(complete) + len(aborted))
    if abortable:
        hi = min(forwarded_hi, client_requests(case))
    if lo > hi:
        problems.append(
            "metrics: forwarded %s (requests +%d, refused +%d, own 5xx %d) but upstream got %d complete%s"
            % (
                ("%d" % forwarded_hi) if proxy_5xx == 0 else "%d..%d" % (forwarded_lo, forwarded_hi),
                d["requests"], d["refused"], proxy_5xx, len(complete),
                (" + %d aborted" % len(aborted)) if aborted else "",
            )
        )
    got_bytes = sum(len(m.body) for m in complete)
    partial = sum(len(m.body) for m in aborted)
    if abortable or aborted:
        ceiling = got_bytes + (client_bytes(case) if abortable else partial)
        if not (got_bytes <= d["size_sum"] <= ceiling):
            problems.append(
                "metrics: forwarded body bytes +%d, upstream got %d (+%d in aborted messages)"
                % (d["size_sum"], got_bytes, partial)
            )
    elif d["size_sum"] != got_bytes:
        problems.append("metrics: forwarded body bytes +%d, upstream got %d" % (d["size_sum"], got_bytes))
    answered = sum(1 for r in finals if r.status >= 101)
    if answered > d["requests"] + d["protocol_errors"]:
        problems.append(
            "metrics: client got %d answers, proxy counted %d requests + %d protocol errors"
            % (answered, d["requests"], d["protocol_errors"])
        )
    if d["tunnels"] != case.tunnels:
        problems.append("metrics: magma_tunnels_total +%d, want +%d" % (d["tunnels"], case.tunnels))
    return problems


def summarize(run, msgs):
    if run.error and not run.responses and not msgs:
        return "error: " + run.error.split(":")[0]
    complete = [m for m in msgs if m.method is not None and m.complete]
    invalid = [m for m in msgs if m.method is None or (m.error or "").startswith("invalid")]
    aborted = len(msgs) - len(complete) - len(invalid)
    client = " ".join(run.tokens) or "no answer"
    if run.closed is True:
        client += ", close"
    up = "up %d" % len(complete)
    if aborted:
        up += " +%d aborted" % aborted
    if invalid:
        up += " +%d invalid" % len(invalid)
    if any(m.target is not None and (SMUGGLED in m.target or m.target == b"/capture") for m in msgs):
        up += " SMUGGLED"
    return "%s; %s" % (client, up)


def run_case(case, front, upstream):
    magma = front.kind == "magma"
    if front.error:
        run = Run()
        run.error = "%s is not running: %s" % (front.name, front.error)
        return run, [], [run.error]
    mark = upstream.mark()
    try:
        before = front.metrics() if magma else None
        run = run_h2(case, front) if case.proto == "h2" else run_h1(case, front)
        after = settle(front, upstream, mark, magma)
    except RuntimeError as e:  # the admin port stopped answering
        detail = str(e)
        if front.proc is not None and front.proc.poll() is not None:
            front.error = "exited with %s during %s" % (front.proc.returncode, case.id)
            detail = "%s; log: %s" % (front.error, front.log_tail())
        run = Run()
        run.error = "%s: %s" % (front.name, detail)
        return run, upstream.since(mark), [run.error]
    msgs = upstream.since(mark)
    return run, msgs, judge(case, run, msgs, before, after)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.environ.get("MAGMA_MONITOR_BIN", "target/debug/magma-monitor"))
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--no-nginx", action="store_true")
    ap.add_argument("--only", help="regex on case ids")
    ap.add_argument("--markdown", help="also write the comparison table to this file")
    ap.add_argument("-v", "--verbose", action="store_true", help="print upstream messages of failures")
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    cases = build_cases()
    if args.only:
        cases = [c for c in cases if re.search(args.only, c.id)]
    if not os.access(args.bin, os.X_OK):
        print("http_conformance: %s is not an executable (build it or set MAGMA_MONITOR_BIN)" % args.bin)
        return 2

    workdir = tempfile.mkdtemp(prefix="magma-conformance-")
    upstream = Upstream()
    fronts = {}
    results = []
    started = time.monotonic()
    try:
        fronts["default"] = Magma(args.bin, upstream.port, [], workdir, "default")
        if fronts["default"].error:
            print("magma-monitor did not start: %s" % fronts["default"].error)
        print("magma-monitor %s (default flags) on %d, admin %d; h11 upstream on %d"
              % (args.bin, fronts["default"].port, fronts["default"].admin, upstream.port))
        for case in cases:
            if case.instance not in fronts:
                fronts[case.instance] = Magma(
                    args.bin, upstream.port,
                    ["--trusted-proxies", "127.0.0.0/8", "--allow-underscore-headers"],
                    workdir, case.instance,
                )
            run, msgs, problems = run_case(case, fronts[case.instance], upstream)
            results.append({"case": case, "magma": summarize(run, msgs), "problems": problems})
            verdict = "FAIL" if problems else "PASS"
            print("%-4s %-38s %s" % (verdict, case.id, summarize(run, msgs)), flush=True)
            for p in problems:
                print("       - " + p)
            if problems and args.verbose:
                for m in msgs:
                    print("       upstream: %s headers=%r" % (m.short(), m.headers))
        for front in list(fronts.values()):
            front.stop()

        nginx_version = "nginx"
        if not args.no_nginx:
            ngx = Nginx(args.nginx, upstream.port, workdir)
            nginx_version = ngx.version
            fronts["nginx"] = ngx
            print("\n%s on %d (comparison only)" % (nginx_version, ngx.port))
            for res in results:
                case = res["case"]
                if case.proto != "h1" or case.instance != "default":
                    res["nginx"] = "n/a"
                    continue
                run, msgs, problems = run_case(case, ngx, upstream)
                note = "meets policy" if not problems else "differs"
                res["nginx"] = "%s (%s)" % (summarize(run, msgs), note)
                res["nginx_problems"] = problems
                print("     %-38s %s" % (case.id, res["nginx"]), flush=True)
            ngx.stop()
    finally:
        for front in fronts.values():
            front.stop()
        upstream.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    failed = [r for r in results if r["problems"]]
    table = markdown_table(results, nginx_version, args.no_nginx)
    print("\n" + table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    print("\n%d cases, %d passed, %d failed (%.0fs)"
          % (len(results), len(results) - len(failed), len(failed), time.monotonic() - started))
    for r in failed:
        print("FAIL %s: %s" % (r["case"].id, "; ".join(r["problems"])))
    return 1 if failed else 0


def markdown_table(results, nginx_version, no_nginx):
    def cell(text):
        return text.replace("|", "\\|")

    lines = [
        "| Case | RFC | magma-monitor | %s | Verdict |" % (nginx_version if not no_nginx else "nginx"),
        "|---|---|---|---|---|",
    ]
    for r in results:
        case = r["case"]
        lines.append("| `%s` | %s | %s | %s | %s |" % (
            case.id, cell(case.rfc), cell(r["magma"]), cell(r.get("nginx", "not run")),
            "FAIL" if r["problems"] else "PASS",
        ))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
