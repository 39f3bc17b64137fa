/*
 * atamo_plugin.h: the C ABI between the Atamo hub and native plugins.
 *
 * This header mirrors the Rust crate `atamo-plugin-abi`; a test compiles it and compares every
 * size, offset and constant with the crate, so the two cannot drift apart.
 *
 * A plugin library exports one object:
 *
 *     const AtamoPluginDeclaration atamo_plugin_declaration = { ... };
 *
 * whose first 16 bytes (AtamoPluginHeader) never change in any ABI version. Messages are JSON
 * bytes; status codes are integers. Whoever allocates frees: bytes passed into a function
 * (AtamoBytes) are borrowed for that call only; bytes handed over (AtamoBuffer) carry the
 * function that releases them, which the receiver calls once.
 *
 * Calls are asynchronous: `call` returns at once, and the plugin answers through the host's
 * `emit` callback with any number of ATAMO_EMIT_DATA (at most as many as it has credits), then
 * one ATAMO_EMIT_END_OK or ATAMO_EMIT_END_ERR. No function may unwind or longjmp across the
 * boundary.
 */
#ifndef ATAMO_PLUGIN_H
#define ATAMO_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ATAMO_DECLARATION_SYMBOL "atamo_plugin_declaration"
#define ATAMO_PLUGIN_MAGIC "ATAMOPLG"
#define ATAMO_ABI_MAJOR 1
#define ATAMO_ABI_MINOR 0

#define ATAMO_FLAG_PANIC_UNWIND 1u

#define ATAMO_OK 0
#define ATAMO_ERR_PANIC (-1)
#define ATAMO_ERR_INVALID (-2)
#define ATAMO_ERR_UNKNOWN_KIND (-3)
#define ATAMO_ERR_INIT (-4)
#define ATAMO_ERR_UNKNOWN_CALL (-5)
#define ATAMO_ERR_UNSUPPORTED (-6)

#define ATAMO_EMIT_DATA 1u
#define ATAMO_EMIT_END_OK 2u
#define ATAMO_EMIT_END_ERR 3u

#define ATAMO_LOG_ERROR 1u
#define ATAMO_LOG_WARN 2u
#define ATAMO_LOG_INFO 3u
#define ATAMO_LOG_DEBUG 4u
#define ATAMO_LOG_TRACE 5u

/* Bytes borrowed for the duration of one function call. */
typedef struct AtamoBytes {
    const uint8_t *ptr;
    size_t len;
} AtamoBytes;

/* Bytes handed over, with the function that frees them (called once by the receiver). */
typedef struct AtamoBuffer {
    const uint8_t *ptr;
    size_t len;
    void *owner;
    void (*release)(void *owner);
} AtamoBuffer;

/* The 16 bytes at the start of every declaration, the same in every ABI version. */
typedef struct AtamoPluginHeader {
    uint8_t magic[8];   /* ATAMO_PLUGIN_MAGIC, without the NUL */
    uint16_t abi_major; /* ATAMO_ABI_MAJOR */
    uint16_t abi_minor; /* ATAMO_ABI_MINOR */
    uint32_t size;      /* sizeof(AtamoPluginDeclaration) */
} AtamoPluginHeader;

/* What the host gives a plugin instance: where to send answers and logs. */
typedef struct AtamoHostApi {
    uint32_t size; /* sizeof(AtamoHostApi) as the host saw it */
    uint32_t reserved;
    void *host; /* passed back to every callback */
    /* Sends an answer or the end of a call; the host takes the buffer. Any thread. */
    void (*emit)(void *host, uint64_t call_key, uint32_t kind, AtamoBuffer payload);
    /* Writes one line to the host's log. Any thread. */
    void (*log)(void *host, uint32_t level, AtamoBytes message);
} AtamoHostApi;

/* The functions a plugin exports. Each returns ATAMO_OK or an ATAMO_ERR_* code. */
typedef struct AtamoPluginVTable {
    uint32_t size; /* sizeof(AtamoPluginVTable) as the plugin saw it */
    uint32_t reserved;
    /* Creates an instance of `kind` with init metadata `config` (JSON). */
    int32_t (*init)(const AtamoHostApi *host, AtamoBytes kind, AtamoBytes config,
                    void **instance, AtamoBuffer *error);
    /* Starts a call; returns at once, answers come through emit. */
    int32_t (*call)(void *instance, uint64_t call_key, AtamoBytes request, uint32_t credits);
    /* Grants a call more answers. */
    int32_t (*credit)(void *instance, uint64_t call_key, uint32_t credits);
    /* Asks a call to stop; it still ends with END_OK or END_ERR. */
    int32_t (*cancel)(void *instance, uint64_t call_key);
    /* Rule providers: evaluates an event (JSON) into proposals (JSON). Synchronous. */
    int32_t (*evaluate)(void *instance, AtamoBytes event, AtamoBuffer *out);
    /* Answers a health question with JSON. */
    int32_t (*health)(void *instance, AtamoBuffer *out);
    /* Destroys an instance once none of its calls is running. */
    void (*drop_instance)(void *instance);
} AtamoPluginVTable;

/* What a plugin library exports under ATAMO_DECLARATION_SYMBOL. */
typedef struct AtamoPluginDeclaration {
    AtamoPluginHeader header;
    uint32_t flags; /* ATAMO_FLAG_* */
    uint32_t reserved;
    const char *name;        /* NUL-terminated UTF-8 */
    const char *version;     /* the plugin's own version */
    const char *sdk_version; /* the SDK or binding it was built with */
    const char *target;      /* target triple */
    const char *description; /* JSON: {"kinds": [{"name", "role", "config_schema"}]} */
    const AtamoPluginVTable *vtable;
} AtamoPluginDeclaration;

/* Exports a symbol from a shared library. */
#if defined(_WIN32)
#define ATAMO_EXPORT __declspec(dllexport)
#else
#define ATAMO_EXPORT __attribute__((visibility("default")))
#endif

/* The header of a declaration built against this file. The magic is spelt as characters: it
 * fills its array exactly and has no terminating NUL. */
#define ATAMO_PLUGIN_HEADER_INIT                                                        \
    {                                                                                   \
        {'A', 'T', 'A', 'M', 'O', 'P', 'L', 'G'}, ATAMO_ABI_MAJOR, ATAMO_ABI_MINOR,     \
            (uint32_t)sizeof(AtamoPluginDeclaration)                                    \
    }

/* Defines the exported declaration:
 *   ATAMO_PLUGIN_DECLARATION = { .header = ATAMO_PLUGIN_HEADER_INIT, .flags = ..., ... }; */
#define ATAMO_PLUGIN_DECLARATION                                                        \
    ATAMO_EXPORT const AtamoPluginDeclaration atamo_plugin_declaration

#ifdef __cplusplus
}
#endif

#endif /* ATAMO_PLUGIN_H */
