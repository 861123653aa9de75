/*
 * A stand-in for libnvidia-ml.so.1, built by the tests, so the real
 * nvml-wrapper code path runs without a GPU.
 *
 * Values come from the file named by FAKE_NVML_CONFIG, re-read whenever it
 * changes, one `key=value` per line:
 *
 *   init=0                 return code of nvmlInit_v2 (9: driver not loaded)
 *   count_error=0          return code of nvmlDeviceGetCount_v2
 *   driver=550.54.15       cuda=12040          count=2
 *   gpuN.name=...          gpuN.uuid=GPU-...   gpuN.lost=1 (every call: GPU_IS_LOST)
 *   gpuN.util_gpu  gpuN.util_mem  gpuN.mem_total  gpuN.mem_used  gpuN.mem_free
 *   gpuN.mem_reserved  gpuN.temp  gpuN.power_mw  gpuN.power_limit_mw
 *   gpuN.sm_mhz  gpuN.mem_mhz  gpuN.energy_mj  gpuN.ecc_corrected
 *   gpuN.ecc_uncorrected  gpuN.throttle  gpuN.pcie_replay
 *   gpuN.procs=PID:BYTES,PID:BYTES   (compute; absent or empty: none)
 *   gpuN.gprocs=PID:BYTES            (graphics)
 *
 * A counter without a value answers NVML_ERROR_NOT_SUPPORTED. Compiling with
 * -DOMIT_<function name> leaves that symbol out of the library.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef int nvmlReturn_t;
typedef struct nvmlDevice_st *nvmlDevice_t;

enum {
    SUCCESS = 0,
    UNINITIALIZED = 1,
    INVALID_ARGUMENT = 2,
    NOT_SUPPORTED = 3,
    INSUFFICIENT_SIZE = 7,
    GPU_IS_LOST = 15,
};

typedef struct { unsigned int gpu; unsigned int memory; } nvmlUtilization_t;
typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;

#define MAX_GPUS 8
#define MAX_PROCS 32
#define UNSET (~0ULL)

enum field {
    F_UTIL_GPU, F_UTIL_MEM, F_MEM_TOTAL, F_MEM_USED, F_MEM_FREE, F_MEM_RESERVED,
    F_TEMP, F_POWER, F_POWER_LIMIT, F_SM, F_MEMCLK, F_ENERGY, F_ECC_C, F_ECC_U,
    F_THROTTLE, F_PCIE, F_LOST, F_COUNT
};
static const char *field_names[F_COUNT] = {
    "util_gpu", "util_mem", "mem_total", "mem_used", "mem_free", "mem_reserved",
    "temp", "power_mw", "power_limit_mw", "sm_mhz", "mem_mhz", "energy_mj",
    "ecc_corrected", "ecc_uncorrected", "throttle", "pcie_replay", "lost",
};

struct procs { unsigned int n; nvmlProcessInfo_t p[MAX_PROCS]; };
struct gpu {
    char name[96], uuid[96];
    unsigned long long f[F_COUNT];
    struct procs compute, graphics;
};
static struct {
    int init_rc, count_rc, initialised;
    char driver[80];
    int cuda;
    unsigned int count;
    struct gpu gpus[MAX_GPUS];
    struct timespec mtime;
    ino_t ino;
    off_t size;
} cfg;

static void parse_procs(struct procs *out, const char *text) {
    out->n = 0;
    while (*text && out->n < MAX_PROCS) {
        char *end;
        unsigned long pid = strtoul(text, &end, 10);
        if (end == text || *end != ':') break;
        unsigned long long bytes = strtoull(end + 1, &end, 10);
        out->p[out->n].pid = (unsigned int)pid;
        out->p[out->n].usedGpuMemory = bytes;
        out->p[out->n].gpuInstanceId = 0xFFFFFFFFu;
        out->p[out->n].computeInstanceId = 0xFFFFFFFFu;
        out->n++;
        text = (*end == ',') ? end + 1 : end;
    }
}

static void reload(void) {
    const char *path = getenv("FAKE_NVML_CONFIG");
    struct stat st;
    if (!path || stat(path, &st) != 0) return;
    if (st.st_ino == cfg.ino && st.st_size == cfg.size &&
        st.st_mtim.tv_sec == cfg.mtime.tv_sec && st.st_mtim.tv_nsec == cfg.mtime.tv_nsec)
        return;
    FILE *file = fopen(path, "r");
    if (!file) return;
    int initialised = cfg.initialised;
    memset(&cfg, 0, sizeof cfg);
    cfg.initialised = initialised;
    cfg.ino = st.st_ino;
    cfg.size = st.st_size;
    cfg.mtime = st.st_mtim;
    strcpy(cfg.driver, "550.54.15");
    cfg.cuda = 12040;
    for (int g = 0; g < MAX_GPUS; g++)
        for (int f = 0; f < F_COUNT; f++) cfg.gpus[g].f[f] = UNSET;
    char line[1024];
    while (fgets(line, sizeof line, file)) {
        line[strcspn(line, "\r\n")] = 0;
        char *eq = strchr(line, '=');
        if (!eq) continue;
        *eq = 0;
        const char *key = line, *value = eq + 1;
        if (!strcmp(key, "init")) cfg.init_rc = atoi(value);
        else if (!strcmp(key, "count_error")) cfg.count_rc = atoi(value);
        else if (!strcmp(key, "driver")) snprintf(cfg.driver, sizeof cfg.driver, "%s", value);
        else if (!strcmp(key, "cuda")) cfg.cuda = atoi(value);
        else if (!strcmp(key, "count")) cfg.count = (unsigned int)atoi(value);
        else if (!strncmp(key, "gpu", 3)) {
            char *dot;
            long g = strtol(key + 3, &dot, 10);
            if (*dot != '.' || g < 0 || g >= MAX_GPUS) continue;
            struct gpu *gpu = &cfg.gpus[g];
            const char *name = dot + 1;
            if (!strcmp(name, "name")) snprintf(gpu->name, sizeof gpu->name, "%s", value);
            else if (!strcmp(name, "uuid")) snprintf(gpu->uuid, sizeof gpu->uuid, "%s", value);
            else if (!strcmp(name, "procs")) parse_procs(&gpu->compute, value);
            else if (!strcmp(name, "gprocs")) parse_procs(&gpu->graphics, value);
            else
                for (int f = 0; f < F_COUNT; f++)
                    if (!strcmp(name, field_names[f])) gpu->f[f] = strtoull(value, NULL, 10);
        }
    }
    fclose(file);
    if (cfg.count > MAX_GPUS) cfg.count = MAX_GPUS;
}

/* Resolves a handle to its GPU, or returns the error to answer with. */
static nvmlReturn_t gpu_of(nvmlDevice_t device, struct gpu **out) {
    reload();
    if (!cfg.initialised) return UNINITIALIZED;
    uintptr_t index = (uintptr_t)device - 1;
    if (index >= cfg.count) return INVALID_ARGUMENT;
    *out = &cfg.gpus[index];
    if ((*out)->f[F_LOST] == 1) return GPU_IS_LOST;
    return SUCCESS;
}

static nvmlReturn_t field(nvmlDevice_t device, enum field f, unsigned long long *value) {
    struct gpu *gpu;
    nvmlReturn_t rc = gpu_of(device, &gpu);
    if (rc != SUCCESS) return rc;
    if (gpu->f[f] == UNSET) return NOT_SUPPORTED;
    *value = gpu->f[f];
    return SUCCESS;
}

#define EXPORT __attribute__((visibility("default")))

#ifndef OMIT_nvmlInit_v2
EXPORT nvmlReturn_t nvmlInit_v2(void) {
    reload();
    if (cfg.init_rc != SUCCESS) return cfg.init_rc;
    cfg.initialised = 1;
    return SUCCESS;
}
#endif

EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    reload();
    if (cfg.init_rc != SUCCESS) return cfg.init_rc;
    cfg.initialised = 1;
    return SUCCESS;
}

#ifndef OMIT_nvmlShutdown
EXPORT nvmlReturn_t nvmlShutdown(void) {
    cfg.initialised = 0;
    return SUCCESS;
}
#endif

EXPORT const char *nvmlErrorString(nvmlReturn_t rc) {
    (void)rc;
    return "fake NVML error";
}

EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    reload();
    if (!cfg.initialised) return UNINITIALIZED;
    snprintf(version, length, "%s", cfg.driver);
    return SUCCESS;
}

EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *version) {
    reload();
    *version = cfg.cuda;
    return SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    reload();
    if (!cfg.initialised) return UNINITIALIZED;
    if (cfg.count_rc != SUCCESS) return cfg.count_rc;
    *count = cfg.count;
    return SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    reload();
    if (!cfg.initialised) return UNINITIALIZED;
    if (index >= cfg.count) return INVALID_ARGUMENT;
    if (cfg.gpus[index].f[F_LOST] == 1) return GPU_IS_LOST;
    *device = (nvmlDevice_t)(uintptr_t)(index + 1);
    return SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    struct gpu *gpu;
    nvmlReturn_t rc = gpu_of(device, &gpu);
    if (rc == SUCCESS) snprintf(uuid, length, "%s", gpu->uuid);
    return rc;
}

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    struct gpu *gpu;
    nvmlReturn_t rc = gpu_of(device, &gpu);
    if (rc == SUCCESS) snprintf(name, length, "%s", gpu->name);
    return rc;
}

#ifndef OMIT_nvmlDeviceGetUtilizationRates
EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *u) {
    unsigned long long g, m;
    nvmlReturn_t rc = field(device, F_UTIL_GPU, &g);
    if (rc == SUCCESS) rc = field(device, F_UTIL_MEM, &m);
    if (rc == SUCCESS) { u->gpu = (unsigned int)g; u->memory = (unsigned int)m; }
    return rc;
}
#endif

#ifndef OMIT_nvmlDeviceGetMemoryInfo_v2
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    nvmlReturn_t rc = field(device, F_MEM_TOTAL, &memory->total);
    if (rc == SUCCESS) rc = field(device, F_MEM_USED, &memory->used);
    if (rc == SUCCESS) rc = field(device, F_MEM_FREE, &memory->free);
    if (rc == SUCCESS) rc = field(device, F_MEM_RESERVED, &memory->reserved);
    return rc;
}
#endif

#define UINT_FIELD(function, f, ...)                                      \
    EXPORT nvmlReturn_t function(nvmlDevice_t device, __VA_ARGS__ unsigned int *out) { \
        unsigned long long v;                                              \
        nvmlReturn_t rc = field(device, f, &v);                            \
        if (rc == SUCCESS) *out = (unsigned int)v;                         \
        return rc;                                                         \
    }

#ifndef OMIT_nvmlDeviceGetTemperature
UINT_FIELD(nvmlDeviceGetTemperature, F_TEMP, int sensor __attribute__((unused)),)
#endif
#ifndef OMIT_nvmlDeviceGetPowerUsage
UINT_FIELD(nvmlDeviceGetPowerUsage, F_POWER)
#endif
#ifndef OMIT_nvmlDeviceGetEnforcedPowerLimit
UINT_FIELD(nvmlDeviceGetEnforcedPowerLimit, F_POWER_LIMIT)
#endif
#ifndef OMIT_nvmlDeviceGetPcieReplayCounter
UINT_FIELD(nvmlDeviceGetPcieReplayCounter, F_PCIE)
#endif

#ifndef OMIT_nvmlDeviceGetClockInfo
EXPORT nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, int type, unsigned int *mhz) {
    unsigned long long v;
    /* NVML_CLOCK_SM = 1, NVML_CLOCK_MEM = 2 */
    nvmlReturn_t rc = field(device, type == 2 ? F_MEMCLK : F_SM, &v);
    if (rc == SUCCESS) *mhz = (unsigned int)v;
    return rc;
}
#endif

#ifndef OMIT_nvmlDeviceGetTotalEnergyConsumption
EXPORT nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *mj) {
    return field(device, F_ENERGY, mj);
}
#endif

#ifndef OMIT_nvmlDeviceGetTotalEccErrors
EXPORT nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, int type, int counter,
                                                unsigned long long *count) {
    (void)counter;
    /* NVML_MEMORY_ERROR_TYPE_CORRECTED = 0, UNCORRECTED = 1 */
    return field(device, type == 0 ? F_ECC_C : F_ECC_U, count);
}
#endif

#ifndef OMIT_nvmlDeviceGetCurrentClocksThrottleReasons
EXPORT nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device,
                                                              unsigned long long *reasons) {
    return field(device, F_THROTTLE, reasons);
}
#endif

static nvmlReturn_t list(const struct procs *procs, unsigned int *count, nvmlProcessInfo_t *out) {
    if (out == NULL || *count < procs->n) {
        *count = procs->n;
        return procs->n == 0 ? SUCCESS : INSUFFICIENT_SIZE;
    }
    memcpy(out, procs->p, procs->n * sizeof *out);
    *count = procs->n;
    return SUCCESS;
}

#ifndef OMIT_nvmlDeviceGetComputeRunningProcesses_v3
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count,
                                                             nvmlProcessInfo_t *infos) {
    struct gpu *gpu;
    nvmlReturn_t rc = gpu_of(device, &gpu);
    return rc == SUCCESS ? list(&gpu->compute, count, infos) : rc;
}
#endif

#ifndef OMIT_nvmlDeviceGetGraphicsRunningProcesses_v3
EXPORT nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device, unsigned int *count,
                                                              nvmlProcessInfo_t *infos) {
    struct gpu *gpu;
    nvmlReturn_t rc = gpu_of(device, &gpu);
    return rc == SUCCESS ? list(&gpu->graphics, count, infos) : rc;
}
#endif
