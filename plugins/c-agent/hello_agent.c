/*
 * hello_agent.c: an Atamo agent written in plain C against include/atamo_plugin.h.
 *
 * The plugin is called "hello-c" and offers one agent kind, `hello`, whose init metadata is
 * `{"greeting": "<text>"}`. Every call answers twice through the host's `emit` callback:
 *
 *   DATA    {"from":"c","credits":<the credits the call started with>}
 *   END_OK  {"from":"c","config":<the init metadata>,"request_bytes":<length of the request>}
 *
 * Build it (the host refuses a plugin whose target triple differs from its own, and a C file
 * cannot know Rust's triple, so it is given at build time):
 *
 *   cc -shared -fPIC -std=c11 -Wall -Wextra -Werror \
 *      -I atamo-plugin-abi/include \
 *      -DATAMO_TARGET="\"$(rustc -vV | sed -n 's/host: //p')\"" \
 *      -o target/plugins/libhello_c.so plugins/c-agent/hello_agent.c
 *
 * The rules of the ABI that matter here (the header says the same):
 *   - Bytes passed in (AtamoBytes) are borrowed for the duration of one function call: copy
 *     what you keep (the config, below).
 *   - Bytes handed over (AtamoBuffer) carry the function that frees them; the receiver calls it
 *     once. Whoever allocates frees, so the host never calls `free` on our memory itself.
 *   - No function may unwind or longjmp across the boundary. ATAMO_FLAG_PANIC_UNWIND tells
 *     the host that a panic in the plugin is caught at the boundary instead of ending the
 *     process (a Rust plugin built with panic=abort lacks it, and is refused by default). C has
 *     no panics and this file never longjmps, so it sets the flag: the promise that nothing
 *     unwinds out holds. (A C++ plugin must catch every exception in each exported function
 *     before it may set it.) The flag does not make a crash survivable: a NULL dereference or
 *     abort() in C still ends the hub, as in any native code.
 *   - The host may call one instance's functions from several threads at once. This instance
 *     is read-only after init, so it needs no lock.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atamo_plugin.h"

#ifndef ATAMO_TARGET
#error "ATAMO_TARGET is not defined: see the build command at the top of this file"
#endif

/* The kind this plugin offers, and the JSON schema of its init metadata. The host checks a
 * registration's config against the schema before `init` runs, naming any field at fault. */
#define HELLO_KIND "hello"
#define HELLO_DESCRIPTION                                                                      \
    "{\"kinds\":[{\"name\":\"" HELLO_KIND "\",\"role\":\"agent\","                             \
    "\"description\":\"answers every call with its config and the request's size\","          \
    "\"config_schema\":{\"type\":\"object\","                                                  \
    "\"properties\":{\"greeting\":{\"type\":\"string\"}},"                                     \
    "\"required\":[\"greeting\"],\"additionalProperties\":false}}]}"

/* One instance: what `init` creates and `drop_instance` destroys. */
typedef struct HelloAgent {
    /* A copy: the AtamoHostApi that `init` receives lives only for that call. */
    AtamoHostApi host;
    /* The init metadata (JSON), copied and NUL-terminated. */
    char *config;
} HelloAgent;

/* ---- Buffers handed to the host ----------------------------------------------------------- */

/* Frees a buffer made by `malloc_buffer`; the host calls it once, from any thread. */
static void release_malloced(void *owner) {
    free(owner);
}

/* Hands `bytes` (from malloc) over to the host, which releases it with `free`. */
static AtamoBuffer malloc_buffer(char *bytes, size_t len) {
    AtamoBuffer buffer = {(const uint8_t *)bytes, len, bytes, release_malloced};
    return buffer;
}

/* Hands over a string literal: nothing to free, so no release function. */
static AtamoBuffer static_buffer(const char *text) {
    AtamoBuffer buffer = {(const uint8_t *)text, strlen(text), NULL, NULL};
    return buffer;
}

/* printf into a fresh malloc'd string, its length in *len; NULL when out of memory. */
static char *format_text(size_t *len, const char *format, ...) __attribute__((format(printf, 2, 3)));

static char *format_text(size_t *len, const char *format, ...) {
    va_list args;
    va_start(args, format);
    int needed = vsnprintf(NULL, 0, format, args);
    va_end(args);
    if (needed < 0) {
        return NULL;
    }
    char *text = malloc((size_t)needed + 1);
    if (text == NULL) {
        return NULL;
    }
    va_start(args, format);
    vsnprintf(text, (size_t)needed + 1, format, args);
    va_end(args);
    *len = (size_t)needed;
    return text;
}

/* ---- The vtable ----------------------------------------------------------------------------- */

static int32_t hello_init(const AtamoHostApi *host, AtamoBytes kind, AtamoBytes config,
                          void **instance, AtamoBuffer *error) {
    if (host == NULL || host->size < sizeof(AtamoHostApi) || host->emit == NULL) {
        *error = static_buffer("hello-c needs a host API with `emit` (ABI 1.0 or newer)");
        return ATAMO_ERR_INVALID;
    }
    if (kind.len != strlen(HELLO_KIND) || memcmp(kind.ptr, HELLO_KIND, kind.len) != 0) {
        *error = static_buffer("hello-c offers one kind, `" HELLO_KIND "`");
        return ATAMO_ERR_UNKNOWN_KIND;
    }

    HelloAgent *agent = malloc(sizeof *agent);
    char *config_copy = malloc(config.len + 1);
    if (agent == NULL || config_copy == NULL) {
        free(agent);
        free(config_copy);
        *error = static_buffer("hello-c: out of memory");
        return ATAMO_ERR_INIT;
    }
    if (config.len > 0) {
        memcpy(config_copy, config.ptr, config.len);
    }
    config_copy[config.len] = '\0';
    agent->host = *host; /* by value: `host` is gone when init returns */
    agent->config = config_copy;

    if (agent->host.log != NULL) {
        size_t len = 0;
        char *line = format_text(&len, "hello-c instance created with config %s", config_copy);
        if (line != NULL) {
            AtamoBytes message = {(const uint8_t *)line, len}; /* borrowed for the call only */
            agent->host.log(agent->host.host, ATAMO_LOG_INFO, message);
            free(line);
        }
    }
    *instance = agent;
    return ATAMO_OK;
}

/* Answers at once, from inside `call`. The host registers a call before starting it, so
 * emitting before `call` returns is allowed; an agent with slow work would instead hand the
 * call to a thread of its own and emit from there. */
static int32_t hello_call(void *instance, uint64_t call_key, AtamoBytes request,
                          uint32_t credits) {
    HelloAgent *agent = instance;
    size_t len = 0;

    /* At most `credits` DATA answers before the host grants more: here, at most one. */
    if (credits > 0) {
        char *answer = format_text(&len, "{\"from\":\"c\",\"credits\":%u}", (unsigned)credits);
        if (answer != NULL) {
            agent->host.emit(agent->host.host, call_key, ATAMO_EMIT_DATA,
                             malloc_buffer(answer, len));
        }
    }

    /* The request (JSON) is borrowed: we only measure it here. */
    char *reply = format_text(&len, "{\"from\":\"c\",\"config\":%s,\"request_bytes\":%zu}",
                              agent->config, request.len);
    if (reply == NULL) {
        /* END_ERR carries {"kind": "retry" | "permanent" | ..., "reason": "..."}. */
        agent->host.emit(agent->host.host, call_key, ATAMO_EMIT_END_ERR,
                         static_buffer("{\"kind\":\"retry\",\"reason\":\"hello-c: out of memory\"}"));
        return ATAMO_OK;
    }
    agent->host.emit(agent->host.host, call_key, ATAMO_EMIT_END_OK, malloc_buffer(reply, len));
    return ATAMO_OK;
}

/* Every call has ended by the time `call` returns, so no call is ever running to be granted
 * credits or cancelled. A plugin with calls in flight looks `call_key` up and returns ATAMO_OK
 * when it finds it. */
static int32_t hello_credit(void *instance, uint64_t call_key, uint32_t credits) {
    (void)instance;
    (void)call_key;
    (void)credits;
    return ATAMO_ERR_UNKNOWN_CALL;
}

static int32_t hello_cancel(void *instance, uint64_t call_key) {
    (void)instance;
    (void)call_key;
    return ATAMO_ERR_UNKNOWN_CALL;
}

/* Only rule-provider kinds evaluate events. */
static int32_t hello_evaluate(void *instance, AtamoBytes event, AtamoBuffer *out) {
    (void)instance;
    (void)event;
    (void)out;
    return ATAMO_ERR_UNSUPPORTED;
}

static int32_t hello_health(void *instance, AtamoBuffer *out) {
    (void)instance;
    *out = static_buffer("{\"ok\":true}");
    return ATAMO_OK;
}

static void hello_drop_instance(void *instance) {
    HelloAgent *agent = instance;
    free(agent->config);
    free(agent);
}

/* ---- The declaration ------------------------------------------------------------------------ */

static const AtamoPluginVTable hello_vtable = {
    .size = sizeof(AtamoPluginVTable),
    .reserved = 0,
    .init = hello_init,
    .call = hello_call,
    .credit = hello_credit,
    .cancel = hello_cancel,
    .evaluate = hello_evaluate,
    .health = hello_health,
    .drop_instance = hello_drop_instance,
};

/* The one symbol the host looks for (ATAMO_DECLARATION_SYMBOL, exported by the macro). */
ATAMO_PLUGIN_DECLARATION = {
    /* Magic, ABI version and size: the 16 bytes every host reads first. */
    .header = ATAMO_PLUGIN_HEADER_INIT,
    /* C cannot unwind: the promise this flag makes holds for every function above. */
    .flags = ATAMO_FLAG_PANIC_UNWIND,
    .reserved = 0,
    .name = "hello-c",
    .version = "1.0.0",
    .sdk_version = "c-header-1.0",
    .target = ATAMO_TARGET,
    .description = HELLO_DESCRIPTION,
    .vtable = &hello_vtable,
};
