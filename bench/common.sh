# Sourced by the bench scripts: installs the load tools when missing, builds
# the binaries under test, makes a scratch folder ($work) and stops every
# process recorded in $pids on exit.

bench_setup() {
  for tool in wrk nginx haproxy taskset; do
    command -v "$tool" >/dev/null || { echo "installing the load tools" >&2; apt-get install -y -qq wrk nginx haproxy util-linux >/dev/null; break; }
  done
  cargo build --release --locked --bin magma-monitor --example bench_upstream --example bare_proxy --example tokio_floor >/dev/null
  work=$(mktemp -d)
  pids=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}

# Writes $work/small.json, a small Magma /predict body, and $work/small.lua,
# the wrk script that POSTs it as JSON (bench/cpu.sh, bench/instructions.sh).
small_post() {
  printf '%s' '{"prompt":"What action should the robot take to pick up the cup?","image":"aGVsbG8="}' > "$work/small.json"
  cat > "$work/small.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$work/small.json", "rb"); wrk.body = f:read("*a"); f:close()
LUA
}

# Writes $work/nginx.conf: one worker process, and per "LISTEN_PORT:UPSTREAM_PORT"
# argument a plain reverse proxy with keep-alive to the upstream and no buffering.
nginx_conf() {
  {
    echo "worker_processes 1; master_process off; daemon off;"
    echo "pid $work/nginx.pid; error_log $work/nginx.err warn;"
    echo "events { worker_connections 4096; }"
    echo "http {"
    echo "  access_log off; client_max_body_size 64m; client_body_buffer_size 2m;"
    local pair listen upstream
    for pair in "$@"; do
      listen=${pair%%:*}
      upstream=${pair##*:}
      echo "  upstream u$listen { server 127.0.0.1:$upstream; keepalive 128; }"
      echo "  server { listen 127.0.0.1:$listen; location / { proxy_pass http://u$listen; proxy_http_version 1.1;" \
        "proxy_set_header Connection \"\"; proxy_request_buffering off; proxy_buffering off; } }"
    done
    echo "}"
  } > "$work/nginx.conf"
}
