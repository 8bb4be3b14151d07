#!/usr/bin/env python3
"""Drives a real `ember serve` with the official `openai` Python package, curl and raw HTTP.

    python tests/serve_openai.py EMBER_BINARY MODEL

Starts `ember serve MODEL --port 0 --parallel 2 --api-key KEY --ctx 512` (the port the server
picks is read from its log), checks the acceptance list of `ember serve` (chat, completions,
streaming equal to non-streaming, greedy replies equal to `ember run --temp 0`, 8 concurrent
clients, stop strings, bad inputs, keys, a cancelled client, raw SSE with curl, a bounded load
check), stops the server and ends with the line "N passed, N failed".
"""

import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai

KEY = "test-key-1234"
CTX = 512
QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three colors.",
]
PROMPTS = ["Once upon a time", "The quick brown fox", "def fibonacci(n):"]

passed = 0
failed = 0


ONLY = os.environ.get("SERVE_ONLY")


def check(name, fn):
    global passed, failed
    if ONLY and not re.search(ONLY, name):
        return
    start = time.time()
    try:
        note = fn()
        passed += 1
        print(f"ok   {name} ({time.time() - start:.1f} s){': ' + note if note else ''}", flush=True)
    except Exception as e:  # noqa: BLE001 - report every failure and go on
        failed += 1
        print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


class Server:
    def __init__(self, ember, model, extra=()):
        self.log = tempfile.NamedTemporaryFile("w+", prefix="ember-serve-", suffix=".log", delete=False)
        cmd = [ember, "serve", model, "--port", "0", "--parallel", "2", "--ctx", str(CTX),
               "--api-key", KEY, *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 120
        self.port = None
        while time.time() < deadline and self.port is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ember serve exited {self.proc.returncode}: {self.text()}")
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.text())
            if m:
                self.port = int(m.group(1))
            time.sleep(0.05)
        if self.port is None:
            raise RuntimeError("ember serve did not start in 120 s: " + self.text())
        self.base = f"http://127.0.0.1:{self.port}"

    def text(self):
        with open(self.log.name) as f:
            return f.read()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.unlink(self.log.name)


def raw(server, method, path, body=None, headers=None, key=KEY):
    """(status, parsed JSON or text, headers) of one raw HTTP request."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    h = {"Content-Type": "application/json"}
    if key:
        h["Authorization"] = f"Bearer {key}"
    h.update(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read().decode()
    conn.close()
    try:
        return r.status, json.loads(data), dict(r.getheaders())
    except json.JSONDecodeError:
        return r.status, data, dict(r.getheaders())


def ember_run(ember, model, args):
    out = subprocess.run([ember, "run", model, *args], capture_output=True, text=True, check=True)
    # `ember run` ends its text with one newline.
    return out.stdout[:-1] if out.stdout.endswith("\n") else out.stdout


def main():
    ember, model = sys.argv[1], sys.argv[2]
    server = Server(ember, model)
    print(f"ember serve on port {server.port}: {server.text().splitlines()[0]}", flush=True)
    client = openai.OpenAI(base_url=server.base + "/v1", api_key=KEY, max_retries=0, timeout=float(os.environ.get("SERVE_TIMEOUT", 300)))
    model_id = None

    def models():
        nonlocal model_id
        ids = [m.id for m in client.models.list().data]
        expect(len(ids) == 1, f"one model, got {ids}")
        model_id = ids[0]
        status, body, _ = raw(server, "GET", "/health", key=None)
        expect(status == 200 and body["status"] == "ok", f"/health without a key: {status} {body}")
        return model_id

    check("models and health", models)

    def chat(question, n=32, **kw):
        return client.chat.completions.create(
            model=model_id, messages=[{"role": "user", "content": question}],
            temperature=0, max_tokens=n, **kw)

    solo = {}

    def chat_greedy_equals_run():
        for q in QUESTIONS:
            r = chat(q)
            want = ember_run(ember, model, ["--chat", "--temp", "0", "-n", "32", "-p", q])
            got = r.choices[0].message.content
            expect(got == want, f"{q!r}: serve {got!r} != run {want!r}")
            expect(r.choices[0].message.role == "assistant", "role")
            expect(r.choices[0].finish_reason in ("stop", "length"), r.choices[0].finish_reason)
            u = r.usage
            expect(u.prompt_tokens > 0 and 0 < u.completion_tokens <= 32, f"usage {u}")
            expect(u.total_tokens == u.prompt_tokens + u.completion_tokens, f"usage {u}")
            solo[q] = got
        return f"{len(QUESTIONS)} questions, e.g. {solo[QUESTIONS[0]]!r}"

    check("chat: greedy equals `ember run --chat --temp 0`", chat_greedy_equals_run)

    def completions_greedy_equals_run():
        for p in PROMPTS:
            r = client.completions.create(model=model_id, prompt=p, temperature=0, max_tokens=24)
            want = ember_run(ember, model, ["--temp", "0", "-n", "24", "-p", p])
            got = r.choices[0].text
            expect(got == want, f"{p!r}: serve {got!r} != run {want!r}")
            expect(r.usage.completion_tokens <= 24, f"usage {r.usage}")
        # The completions default is OpenAI's 16 tokens.
        r = client.completions.create(model=model_id, prompt=PROMPTS[0], temperature=0)
        expect(r.usage.completion_tokens <= 16, f"default max_tokens: {r.usage}")
        return None

    check("completions: greedy equals `ember run --temp 0`", completions_greedy_equals_run)

    def streaming_equals_plain():
        for q in QUESTIONS:
            plain = chat(q)
            pieces, finish, usage, roles = [], None, None, []
            for chunk in chat(q, stream=True, stream_options={"include_usage": True}):
                if chunk.usage:
                    usage = chunk.usage
                for c in chunk.choices:
                    if c.delta.role:
                        roles.append(c.delta.role)
                    if c.delta.content:
                        pieces.append(c.delta.content)
                    if c.finish_reason:
                        finish = c.finish_reason
            text = "".join(pieces)
            expect(text == plain.choices[0].message.content, f"stream {text!r} != {plain.choices[0].message.content!r}")
            expect(finish == plain.choices[0].finish_reason, f"finish {finish} != {plain.choices[0].finish_reason}")
            expect(roles == ["assistant"], f"roles {roles}")
            expect(usage is not None and usage.completion_tokens == plain.usage.completion_tokens, f"usage {usage}")
        for p in PROMPTS:
            plain = client.completions.create(model=model_id, prompt=p, temperature=0, max_tokens=24)
            text = "".join(c.choices[0].text for c in client.completions.create(
                model=model_id, prompt=p, temperature=0, max_tokens=24, stream=True) if c.choices)
            expect(text == plain.choices[0].text, f"stream {text!r} != {plain.choices[0].text!r}")
        return None

    check("streaming equals non-streaming (chat and completions)", streaming_equals_plain)

    def concurrent_identical():
        # 8 clients at once on 2 slots, the same question: every reply is the one given alone.
        q = QUESTIONS[0]
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda _: chat(q).choices[0].message.content, range(8)))
        expect(all(r == solo[q] for r in replies), f"replies differ: {set(replies)}")
        # ... and mixed questions, streamed or not.
        jobs = [(QUESTIONS[i % 3], i % 2 == 0) for i in range(8)]

        def one(job):
            q, stream = job
            if stream:
                return "".join(c.choices[0].delta.content or "" for c in chat(q, stream=True) if c.choices)
            return chat(q).choices[0].message.content

        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(one, jobs))
        for (q, _), r in zip(jobs, replies):
            expect(r == solo[q], f"{q!r}: {r!r} != {solo[q]!r}")
        return "16 concurrent replies equal the solo ones"

    check("8 concurrent clients get identical greedy replies", concurrent_identical)

    def stop_strings():
        q = QUESTIONS[0]
        full = solo[q]
        # A stop string from the middle of the reply: the reply ends just before it.
        words = full.split()
        stop = " " + words[len(words) // 2]
        at = full.find(stop)
        expect(at > 0, f"no stop candidate in {full!r}")
        r = chat(q, stop=[stop])
        expect(r.choices[0].message.content == full[:at], f"{r.choices[0].message.content!r} != {full[:at]!r}")
        expect(r.choices[0].finish_reason == "stop", r.choices[0].finish_reason)
        streamed = "".join(c.choices[0].delta.content or "" for c in chat(q, stop=stop, stream=True) if c.choices)
        expect(streamed == full[:at], f"streamed {streamed!r}")
        p = PROMPTS[0]
        whole = client.completions.create(model=model_id, prompt=p, temperature=0, max_tokens=24).choices[0].text
        cut = whole[len(whole) // 2:len(whole) // 2 + 3]
        r = client.completions.create(model=model_id, prompt=p, temperature=0, max_tokens=24, stop=cut)
        expect(r.choices[0].text == whole[:whole.find(cut)], f"{r.choices[0].text!r} vs {whole!r} stop {cut!r}")
        return f"stop {stop!r}"

    check("stop strings", stop_strings)

    def sampling_seeded():
        kw = dict(model=model_id, messages=[{"role": "user", "content": QUESTIONS[1]}], max_tokens=24,
                  temperature=0.9, top_p=0.95, seed=42)
        a = client.chat.completions.create(**kw).choices[0].message.content
        b = client.chat.completions.create(**kw).choices[0].message.content
        expect(a == b, f"seed 42 twice: {a!r} != {b!r}")
        return None

    check("a seeded sampled reply repeats", sampling_seeded)

    def bad_inputs():
        msgs = [{"role": "user", "content": "hi"}]
        cases = [
            ("malformed JSON", '{"messages": [', 400, None),
            ("not an object", "[1, 2]", 400, None),
            ("missing messages", {"model": "m"}, 400, "messages"),
            ("messages wrongly typed", {"messages": "hi"}, 400, "messages"),
            ("max_tokens negative", {"messages": msgs, "max_tokens": -5}, 400, "max_tokens"),
            ("max_tokens huge", {"messages": msgs, "max_tokens": 10**12}, 400, "max_tokens"),
            ("max_tokens a string", {"messages": msgs, "max_tokens": "8"}, 400, "max_tokens"),
            ("temperature out of range", {"messages": msgs, "temperature": 7}, 400, "temperature"),
            ("unsupported field", {"messages": msgs, "tools": [{"type": "function"}]}, 400, "tools"),
            ("unsupported penalty", {"messages": msgs, "presence_penalty": 1.0}, 400, "presence_penalty"),
            ("n > 1", {"messages": msgs, "n": 3}, 400, "n"),
            ("unknown role", {"messages": [{"role": "tool", "content": "x"}]}, 400, "messages[0].role"),
            ("prompt beyond the context", {"messages": [{"role": "user", "content": "hello " * (2 * CTX)}]}, 400, "messages"),
        ]
        for name, body, status, param in cases:
            got, b, _ = raw(server, "POST", "/v1/chat/completions", body)
            expect(got == status, f"{name}: status {got} {b}")
            err = b.get("error") if isinstance(b, dict) else None
            expect(isinstance(err, dict) and isinstance(err.get("message"), str) and err.get("type")
                   and "code" in err, f"{name}: not an OpenAI error: {b}")
            if param:
                expect(err.get("param") == param, f"{name}: param {err.get('param')} != {param}")
        got, b, _ = raw(server, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x" * 8000}] * 700})
        expect(got == 413 and b["error"]["code"] == "request_too_large", f"5 MiB body: {got} {b}")
        got, b, _ = raw(server, "POST", "/v1/completions", {"prompt": [1, 2, 10**9]})
        expect(got == 400 and b["error"]["param"] == "prompt", f"token id beyond the vocabulary: {got} {b}")
        got, b, _ = raw(server, "GET", "/v1/chat/completions")
        expect(got == 405, f"GET on a POST endpoint: {got}")
        got, b, _ = raw(server, "GET", "/nope")
        expect(got == 404, f"unknown path: {got}")
        # The openai package raises its own error types for them.
        try:
            client.chat.completions.create(model=model_id, messages=msgs, max_tokens=-1)
            raise AssertionError("max_tokens -1 was accepted")
        except openai.BadRequestError as e:
            expect(e.status_code == 400 and "max_tokens" in str(e), str(e))
        try:
            client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "a b " * CTX}])
            raise AssertionError("a prompt beyond the context was accepted")
        except openai.BadRequestError as e:
            expect(e.code == "context_length_exceeded", f"code {e.code}")
        # Still serving, and the same reply as before.
        expect(chat(QUESTIONS[0]).choices[0].message.content == solo[QUESTIONS[0]], "reply after bad inputs")
        return f"{len(cases) + 4} bad requests answered, server up"

    check("bad inputs: OpenAI-style 400/404/405/413 errors, server stays up", bad_inputs)

    def keys():
        for key in ("wrong-key", ""):
            bad = openai.OpenAI(base_url=server.base + "/v1", api_key=key or "x", max_retries=0)
            try:
                bad.models.list()
                raise AssertionError(f"key {key!r} accepted")
            except openai.AuthenticationError as e:
                expect(e.status_code == 401, str(e))
        got, b, _ = raw(server, "POST", "/v1/completions", {"prompt": "hi"}, key=None)
        expect(got == 401 and b["error"]["code"] == "invalid_api_key", f"no key: {got} {b}")
        return None

    check("a wrong or missing key is 401", keys)

    def curl_sse():
        body = json.dumps({"model": model_id, "messages": [{"role": "user", "content": QUESTIONS[0]}],
                           "temperature": 0, "max_tokens": 32, "stream": True})
        out = subprocess.run(["curl", "-sN", "-i", "--max-time", "120", server.base + "/v1/chat/completions",
                              "-H", f"Authorization: Bearer {KEY}", "-H", "Content-Type: application/json",
                              "-d", body], capture_output=True, text=True, check=True).stdout
        head, _, stream = out.partition("\n\n")  # text mode turned \r\n into \n
        expect("content-type: text/event-stream" in head.lower(), f"headers: {head}")
        events = [e for e in stream.split("\n\n") if e.strip()]
        data = [e[len("data: "):] for e in events if e.startswith("data: ")]
        expect(data and data[-1] == "[DONE]", f"last event {events[-1:]!r}")
        chunks = [json.loads(d) for d in data[:-1]]
        expect(all(c["object"] == "chat.completion.chunk" for c in chunks), "chunk objects")
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        expect(text == solo[QUESTIONS[0]], f"curl stream {text!r}")
        expect(chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length"), "finish_reason")
        return f"{len(chunks)} chunks then [DONE]"

    check("curl: the raw SSE stream", curl_sse)

    def busy():
        return raw(server, "GET", "/health", key=None)[1]["slots_busy"]

    def disconnect_cancels():
        long = {"model": model_id, "prompt": "Here is a long story about a dragon. Chapter 1.",
                "temperature": 0, "max_tokens": CTX - 20}
        for stream in (True, False):
            body = json.dumps({**long, "stream": stream}).encode()
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            if stream:
                s.recv(4096)  # the headers and the first chunks
            deadline = time.time() + 30
            while busy() == 0 and time.time() < deadline:
                time.sleep(0.05)
            expect(busy() == 1, "the request did not start")
            s.close()
            deadline = time.time() + 30
            while busy() > 0 and time.time() < deadline:
                time.sleep(0.1)
            expect(busy() == 0, f"still generating 30 s after the client left (stream={stream})")
        cancelled = server.text().count("client gone: generation cancelled")
        expect(cancelled == 2, f"{cancelled} cancellations logged, want 2")
        return None

    check("a client that disconnects cancels its generation (streamed and not)", disconnect_cancels)

    def load():
        # 8 clients x 25 short greedy requests: none lost, each reply the solo one.
        prompts = [f"{p} {i}" for i in range(4) for p in PROMPTS]
        want = {p: client.completions.create(model=model_id, prompt=p, temperature=0, max_tokens=8).choices[0].text
                for p in prompts}
        latencies, errors = [], []
        lock = threading.Lock()

        def worker(w):
            c = openai.OpenAI(base_url=server.base + "/v1", api_key=KEY, max_retries=0, timeout=float(os.environ.get("SERVE_TIMEOUT", 300)))
            for i in range(25):
                p = prompts[(w * 25 + i) % len(prompts)]
                t = time.time()
                try:
                    got = c.completions.create(model=model_id, prompt=p, temperature=0, max_tokens=8).choices[0].text
                    ok = got == want[p]
                except Exception as e:  # noqa: BLE001
                    ok, got = False, repr(e)
                with lock:
                    latencies.append(time.time() - t)
                    if not ok:
                        errors.append((p, got))

        start = time.time()
        threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.time() - start
        expect(not errors and len(latencies) == 200, f"{len(errors)} of 200 failed or differed: {errors[:3]}")
        q = statistics.quantiles(latencies, n=100)
        return (f"200 requests, 8 clients, 2 slots: {200 / wall:.1f} req/s, p50 {q[49] * 1e3:.0f} ms, "
                f"p99 {q[98] * 1e3:.0f} ms, none lost")

    check("bounded load: 8 clients x 25 requests", load)

    if failed:
        print("the server's log ends with:\n" + "\n".join(server.text().splitlines()[-40:]))
    server.stop()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
