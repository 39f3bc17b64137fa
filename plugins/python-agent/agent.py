#!/usr/bin/env python3
"""An Atamo process agent in Python, with nothing but the standard library.

The hub starts this program, writes one JSON object per line to its stdin and reads one JSON
object per line from its stdout (the protocol of the atamo-plugin-protocol crate, version 1).
Stdout carries protocol lines only; logging goes to stderr, which the hub copies into its log.

Agent kind `words`. Action types:

- `word_count`: counts the words of `payload.text`; ends with
  `{"words": 3, "counts": {"a": 2, "b": 1}}`.
- `upper`: a feed: one answer `{"seq": i, "word": "WORD"}` per word of `payload.text`, in
  order, at most as many ahead of the client as the host's credits allow; ends with
  `{"words": n}`.
- `sleep`: waits `payload.ms` milliseconds (or until cancelled); ends with `{"slept_ms": ms}`.
- `whoami`: ends with what the hub said about the call: the user, groups and tenant it acts
  for, the event type, the request id (null for an event) and the attempt.

Config (the `hello`'s `config`, all optional):

- `lowercase_counts` (bool, default true): count words case-insensitively.
- `feed_delay_ms` (int, default 0): pause between two answers of `upper`.

Run it by hand to see the protocol:

    printf '%s\n' '{"type":"hello","protocol":1,"agent":"w","kind":"words","config":{}}' \
      '{"type":"ping","id":1}' '{"type":"goodbye"}' | python3 plugins/python-agent/agent.py
"""

import json
import logging
import os
import sys
import threading
import time

PROTOCOL = 1
NAME = "atamo-python-agent"
VERSION = "1.0.0"
KIND = "words"
CONFIG_FIELDS = {"lowercase_counts": bool, "feed_delay_ms": int}

log = logging.getLogger("python-agent")

# One lock for stdout: lines from several threads must not interleave.
_out_lock = threading.Lock()


def send(message):
    line = json.dumps(message, separators=(",", ":"))
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Cancelled(Exception):
    """The host cancelled the call."""


class CallFailed(Exception):
    """A call failed; `error` is the protocol's CallError object."""

    def __init__(self, kind, reason):
        super().__init__(reason)
        self.error = {"kind": kind, "reason": reason}


class Call:
    """One call: its credits (how many answers it may still send) and whether it was cancelled."""

    def __init__(self, call_id, credits):
        self.id = call_id
        self.credits = credits
        self.cancelled = False
        self.cond = threading.Condition()

    def grant(self, n):
        with self.cond:
            self.credits += n
            self.cond.notify_all()

    def cancel(self):
        with self.cond:
            self.cancelled = True
            self.cond.notify_all()

    def emit(self, payload):
        """Sends one answer, waiting for a credit first: a slow client slows us down."""
        with self.cond:
            while self.credits == 0 and not self.cancelled:
                self.cond.wait()
            if self.cancelled:
                raise Cancelled()
            self.credits -= 1
        send({"type": "data", "id": self.id, "payload": payload})

    def sleep(self, seconds):
        """Sleeps, waking early (and raising) when cancelled."""
        deadline = time.monotonic() + seconds
        with self.cond:
            while not self.cancelled:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.cond.wait(left)
            raise Cancelled()


class Words:
    """The `words` agent kind."""

    def __init__(self, config):
        if not isinstance(config, dict):
            raise ValueError("config must be an object")
        for field, value in config.items():
            expected = CONFIG_FIELDS.get(field)
            if expected is None:
                raise ValueError(
                    "field `%s`: unknown field (expected one of: %s)"
                    % (field, ", ".join(sorted(CONFIG_FIELDS)))
                )
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise ValueError("field `%s`: expected %s" % (field, expected.__name__))
        self.lowercase = config.get("lowercase_counts", True)
        self.feed_delay = config.get("feed_delay_ms", 0) / 1000.0

    def call(self, request, call):
        action = request.get("action_type")
        payload = request.get("payload")
        if not isinstance(payload, dict):
            payload = {}
        if action == "word_count":
            words = _words(payload)
            counts = {}
            for word in words:
                key = word.lower() if self.lowercase else word
                counts[key] = counts.get(key, 0) + 1
            return {"words": len(words), "counts": counts}
        if action == "upper":
            words = _words(payload)
            for seq, word in enumerate(words):
                if self.feed_delay:
                    call.sleep(self.feed_delay)
                call.emit({"seq": seq, "word": word.upper()})
            return {"words": len(words)}
        if action == "whoami":
            return {
                "user": request.get("user"),
                "groups": request.get("groups", []),
                "tenant": request.get("tenant"),
                "event_type": request.get("event_type"),
                "request_id": request.get("request_id"),
                "attempt": request.get("attempt"),
            }
        if action == "sleep":
            ms = payload.get("ms", 0)
            call.sleep(ms / 1000.0)
            return {"slept_ms": ms}
        raise CallFailed("permanent", "unknown action type `%s`" % action)


def _words(payload):
    text = payload.get("text")
    if not isinstance(text, str):
        raise CallFailed("permanent", "payload.text must be a string")
    return text.split()


def run_call(agent, request, call, calls, calls_lock):
    try:
        result = agent.call(request, call)
        message = {"type": "end", "id": call.id}
        if result is not None:
            message["payload"] = result
    except Cancelled:
        message = {"type": "error", "id": call.id, "error": {"kind": "cancelled"}}
    except CallFailed as failed:
        message = {"type": "error", "id": call.id, "error": failed.error}
    except Exception as exc:  # a bug in the agent: report it, keep serving
        log.exception("call %s failed", call.id)
        message = {
            "type": "error",
            "id": call.id,
            "error": {"kind": "panicked", "message": "%s: %s" % (type(exc).__name__, exc)},
        }
    with calls_lock:
        calls.pop(call.id, None)
    send(message)


def handshake(line):
    """Answers the host's hello; returns the agent, or None after sending init_failed."""
    try:
        hello = json.loads(line)
    except ValueError as exc:
        log.error("the first line is not JSON: %s", exc)
        return None
    if hello.get("type") != "hello":
        log.error("the first line is not a hello: %s", line.strip())
        return None
    protocol = hello.get("protocol")
    if protocol != PROTOCOL:
        send({
            "type": "init_failed",
            "error": "the host speaks protocol %s, this program speaks %s" % (protocol, PROTOCOL),
        })
        return None
    kind = hello.get("kind")
    if kind != KIND:
        send({"type": "init_failed", "error": "program `%s` offers no kind `%s` (it offers `%s`)" % (NAME, kind, KIND)})
        return None
    try:
        agent = Words(hello.get("config") or {})
    except ValueError as exc:
        send({"type": "init_failed", "error": "bad init metadata: %s" % exc})
        return None
    send({"type": "hello", "protocol": PROTOCOL, "name": NAME, "version": VERSION})
    log.info("serving agent `%s` (kind %s)", hello.get("agent"), kind)
    return agent


def main():
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    first = sys.stdin.readline()
    if not first:
        return 0
    agent = handshake(first)
    if agent is None:
        return 1
    calls = {}
    calls_lock = threading.Lock()
    threads = []
    goodbye = False
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            message = json.loads(line)
        except ValueError as exc:
            log.warning("ignoring a line that is not JSON: %s", exc)
            continue
        kind = message.get("type")
        if kind == "call":
            call = Call(message["id"], message.get("credits", 1))
            if goodbye:
                send({"type": "error", "id": call.id,
                      "error": {"kind": "retry", "reason": "the agent is stopping"}})
                continue
            with calls_lock:
                calls[call.id] = call
            thread = threading.Thread(
                target=run_call, args=(agent, message["request"], call, calls, calls_lock), daemon=True
            )
            thread.start()
            threads = [t for t in threads if t.is_alive()]
            threads.append(thread)
        elif kind in ("credit", "cancel"):
            with calls_lock:
                call = calls.get(message.get("id"))
            if call is not None:
                if kind == "credit":
                    call.grant(message.get("credits", 0))
                else:
                    call.cancel()
        elif kind == "ping":
            send({"type": "pong", "id": message.get("id")})
        elif kind == "goodbye" and not goodbye:
            # Finish the calls in flight, then exit. Keep reading meanwhile: a feed may still
            # need credits, and the host may cancel.
            goodbye = True
            threading.Thread(target=exit_when_done, args=(threads,), daemon=True).start()
    # Stdin closed: the host is gone and nobody will read the answers.
    with calls_lock:
        for call in calls.values():
            call.cancel()
    for thread in threads:
        thread.join()
    log.info("bye")
    return 0


def exit_when_done(threads):
    for thread in threads:
        thread.join()
    log.info("goodbye: every call finished, bye")
    with _out_lock:
        sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
