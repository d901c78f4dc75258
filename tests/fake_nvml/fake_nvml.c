/*
 * A fake libnvidia-ml.so: enough of NVML for gantry's probe to run its real code path
 * (nvml-wrapper, libloading, the C ABI) on a machine without a GPU.
 *
 * nvml-wrapper resolves every NVML symbol it knows when the library is opened, but keeps a
 * missing one as an error that only surfaces when that function is called; so this library
 * exports just what gantry calls, plus nvmlShutdown (called on drop, unconditionally) and the
 * functions nvml-wrapper calls during init. Anything not modelled for a GPU answers
 * NVML_ERROR_NOT_SUPPORTED, as real GPUs do for sensors they lack.
 *
 * Configuration, read at nvmlInit:
 *
 *   FAKE_NVML_GPUS        GPUs separated by ';', each
 *                         uuid|name|memory|pciBusId[|memoryUsed|gpuUtil|tempC|powerMw|numaNode]
 *                         memory and memoryUsed in bytes or with a Ki/Mi/Gi suffix; an empty
 *                         or missing optional field is NOT_SUPPORTED.
 *   FAKE_NVML_INIT_ERROR  an nvmlReturn_t that nvmlInit returns (9: driver not loaded).
 *   FAKE_NVML_LOST_INDEX  the index of a GPU that has fallen off the bus (GPU_IS_LOST).
 *   FAKE_NVML_DRIVER      the driver version (default 550.54.15).
 *   FAKE_NVML_LOG         a file each call's name is appended to.
 *
 * Built with -DFAKE_NVML_NO_MEMORY_V2 it lacks nvmlDeviceGetMemoryInfo_v2, like drivers
 * before R510.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;

enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
};

#define MAX_GPUS 64
#define FIELD_LEN 96

struct fake_gpu {
    char uuid[FIELD_LEN];
    char name[FIELD_LEN];
    unsigned long long memory;
    unsigned int domain, bus, device, function;
    int has_pci;
    long long memory_used; /* -1: not supported, as for the fields below */
    long long util;
    long long temp;
    long long power_mw;
    long long numa;
    int lost;
};

typedef struct fake_gpu *nvmlDevice_t;

typedef struct {
    unsigned long long total, free, used;
} nvmlMemory_t;

typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

typedef struct {
    char busIdLegacy[16];
    unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

typedef struct {
    unsigned int gpu, memory;
} nvmlUtilization_t;

static struct fake_gpu gpus[MAX_GPUS];
static unsigned int gpu_count;
static int init_count;

static void log_call(const char *fmt, ...) {
    const char *path = getenv("FAKE_NVML_LOG");
    if (!path || !*path)
        return;
    FILE *f = fopen(path, "a");
    if (!f)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fclose(f);
}

static unsigned long long parse_bytes(const char *s) {
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (end && strcmp(end, "Ki") == 0)
        v <<= 10;
    else if (end && strcmp(end, "Mi") == 0)
        v <<= 20;
    else if (end && strcmp(end, "Gi") == 0)
        v <<= 30;
    return v;
}

static long long optional_number(char *s, int bytes) {
    if (!s || !*s)
        return -1;
    return bytes ? (long long)parse_bytes(s) : atoll(s);
}

/* strsep-like: the next '|'-separated field, or NULL. */
static char *next_field(char **rest) {
    if (!*rest)
        return NULL;
    char *start = *rest;
    char *bar = strchr(start, '|');
    if (bar) {
        *bar = '\0';
        *rest = bar + 1;
    } else {
        *rest = NULL;
    }
    return start;
}

static void load_gpus(void) {
    gpu_count = 0;
    memset(gpus, 0, sizeof gpus);
    const char *spec = getenv("FAKE_NVML_GPUS");
    if (!spec)
        return;
    char *copy = strdup(spec);
    char *save = NULL;
    for (char *entry = strtok_r(copy, ";", &save); entry && gpu_count < MAX_GPUS;
         entry = strtok_r(NULL, ";", &save)) {
        struct fake_gpu *g = &gpus[gpu_count];
        char *rest = entry;
        char *uuid = next_field(&rest), *name = next_field(&rest), *memory = next_field(&rest);
        char *pci = next_field(&rest), *used = next_field(&rest), *util = next_field(&rest);
        char *temp = next_field(&rest), *power = next_field(&rest), *numa = next_field(&rest);
        if (!uuid || !name || !memory)
            continue;
        snprintf(g->uuid, FIELD_LEN, "%s", uuid);
        snprintf(g->name, FIELD_LEN, "%s", name);
        g->memory = parse_bytes(memory);
        g->has_pci = pci && sscanf(pci, "%x:%x:%x.%x", &g->domain, &g->bus, &g->device,
                                   &g->function) == 4;
        g->memory_used = optional_number(used, 1);
        g->util = optional_number(util, 0);
        g->temp = optional_number(temp, 0);
        g->power_mw = optional_number(power, 0);
        g->numa = optional_number(numa, 0);
        gpu_count++;
    }
    free(copy);
    const char *lost = getenv("FAKE_NVML_LOST_INDEX");
    if (lost && *lost && (unsigned)atoi(lost) < gpu_count)
        gpus[atoi(lost)].lost = 1;
}

static nvmlReturn_t check_device(nvmlDevice_t device) {
    if (init_count == 0)
        return NVML_ERROR_UNINITIALIZED;
    if (device < gpus || device >= gpus + gpu_count)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (device->lost)
        return NVML_ERROR_GPU_IS_LOST;
    return NVML_SUCCESS;
}

static nvmlReturn_t copy_string(char *out, unsigned int length, const char *value) {
    if (!out)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(value) + 1 > length)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(out, value);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    log_call("nvmlInitWithFlags %u", flags);
    const char *err = getenv("FAKE_NVML_INIT_ERROR");
    if (err && *err)
        return atoi(err);
    if (init_count++ == 0)
        load_gpus();
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit_v2(void) {
    log_call("nvmlInit_v2");
    const char *err = getenv("FAKE_NVML_INIT_ERROR");
    if (err && *err)
        return atoi(err);
    if (init_count++ == 0)
        load_gpus();
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void) {
    log_call("nvmlShutdown");
    if (init_count == 0)
        return NVML_ERROR_UNINITIALIZED;
    init_count--;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    log_call("nvmlSystemGetDriverVersion");
    if (init_count == 0)
        return NVML_ERROR_UNINITIALIZED;
    const char *v = getenv("FAKE_NVML_DRIVER");
    return copy_string(version, length, v && *v ? v : "550.54.15");
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    log_call("nvmlDeviceGetCount_v2");
    if (init_count == 0)
        return NVML_ERROR_UNINITIALIZED;
    if (!count)
        return NVML_ERROR_INVALID_ARGUMENT;
    *count = gpu_count;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    log_call("nvmlDeviceGetHandleByIndex_v2 %u", index);
    if (init_count == 0)
        return NVML_ERROR_UNINITIALIZED;
    if (!device || index >= gpu_count)
        return NVML_ERROR_INVALID_ARGUMENT;
    *device = &gpus[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    log_call("nvmlDeviceGetName");
    nvmlReturn_t r = check_device(device);
    return r ? r : copy_string(name, length, device->name);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    log_call("nvmlDeviceGetUUID");
    nvmlReturn_t r = check_device(device);
    return r ? r : copy_string(uuid, length, device->uuid);
}

static unsigned long long used_bytes(nvmlDevice_t device) {
    return device->memory_used < 0 ? 0 : (unsigned long long)device->memory_used;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    log_call("nvmlDeviceGetMemoryInfo");
    nvmlReturn_t r = check_device(device);
    if (r)
        return r;
    if (!memory)
        return NVML_ERROR_INVALID_ARGUMENT;
    memory->total = device->memory;
    memory->used = used_bytes(device);
    memory->free = memory->total - memory->used;
    return NVML_SUCCESS;
}

#ifndef FAKE_NVML_NO_MEMORY_V2
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    log_call("nvmlDeviceGetMemoryInfo_v2");
    nvmlReturn_t r = check_device(device);
    if (r)
        return r;
    if (!memory)
        return NVML_ERROR_INVALID_ARGUMENT;
    /* NVML_STRUCT_VERSION(Memory, 2), as nvml.h defines it. */
    if (memory->version != (unsigned int)(sizeof(nvmlMemory_v2_t) | (2u << 24)))
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    memory->total = device->memory;
    memory->reserved = 0;
    memory->used = used_bytes(device);
    memory->free = memory->total - memory->used;
    return NVML_SUCCESS;
}
#endif

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci) {
    log_call("nvmlDeviceGetPciInfo_v3");
    nvmlReturn_t r = check_device(device);
    if (r)
        return r;
    if (!pci)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (!device->has_pci)
        return NVML_ERROR_NOT_SUPPORTED;
    memset(pci, 0, sizeof *pci);
    pci->domain = device->domain;
    pci->bus = device->bus;
    pci->device = device->device;
    pci->pciDeviceId = 0x223510de; /* device id << 16 | NVIDIA's vendor id */
    pci->pciSubSystemId = 0x145f10de;
    /* Real NVML: an eight-digit domain, upper-case hex. */
    snprintf(pci->busId, sizeof pci->busId, "%08X:%02X:%02X.%X", device->domain, device->bus,
             device->device, device->function);
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%04X:%02X:%02X.%X", device->domain,
             device->bus, device->device, device->function);
    return NVML_SUCCESS;
}

/* A field of struct fake_gpu that is NOT_SUPPORTED when negative. */
static nvmlReturn_t optional_uint(nvmlDevice_t device, size_t field, unsigned int *out) {
    nvmlReturn_t r = check_device(device);
    if (r)
        return r;
    if (!out)
        return NVML_ERROR_INVALID_ARGUMENT;
    long long value = *(const long long *)((const char *)device + field);
    if (value < 0)
        return NVML_ERROR_NOT_SUPPORTED;
    *out = (unsigned int)value;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
    log_call("nvmlDeviceGetUtilizationRates");
    if (!utilization)
        return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int gpu = 0;
    nvmlReturn_t r = optional_uint(device, offsetof(struct fake_gpu, util), &gpu);
    if (r)
        return r;
    utilization->gpu = gpu;
    utilization->memory = 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned int *temp) {
    log_call("nvmlDeviceGetTemperature %d", sensor);
    if (sensor != 0) /* NVML_TEMPERATURE_GPU */
        return NVML_ERROR_INVALID_ARGUMENT;
    return optional_uint(device, offsetof(struct fake_gpu, temp), temp);
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) {
    log_call("nvmlDeviceGetPowerUsage");
    return optional_uint(device, offsetof(struct fake_gpu, power_mw), power);
}

nvmlReturn_t nvmlDeviceGetNumaNodeId(nvmlDevice_t device, unsigned int *node) {
    log_call("nvmlDeviceGetNumaNodeId");
    return optional_uint(device, offsetof(struct fake_gpu, numa), node);
}
