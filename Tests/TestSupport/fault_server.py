"""A loopback HTTP server for the client tests: OpenAI chat completions, the reference's model
and retriever protocols, and injected faults chosen by the requested model name.
Prints its port on the first line of stdout, then serves until killed."""
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counts = {}
lock = threading.Lock()

def bump(key):
    with lock:
        counts[key] = counts.get(key, 0) + 1
        return counts[key]

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, obj=None, raw=None, headers=()):
        body = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/v1/models":  # what the sample stage's preflight asks an OpenAI server
            return self.reply(200, {"object": "list", "data": [{"id": "any", "object": "model"}]})
        if self.path.startswith("/count/"):
            self.reply(200, {"count": counts.get(self.path[len("/count/"):], 0)})
        else:
            self.reply(404, {"error": "no such path"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        req = json.loads(self.rfile.read(length) or b"{}")
        if self.path.startswith("/count/"):
            return self.reply(200, {"count": counts.get(self.path[len("/count/"):], 0)})
        if self.path == "/v1/chat/completions":
            return self.chat(req)
        if self.path == "/":
            n = bump("haps")
            assert set(req["config"]) == {"temperature", "top_p", "max_tokens", "n"}, req
            return self.reply(200, {"response": ["  haps says: " + req["messages"][-1]["content"] + "  "], "status": 200, "time": "0"})
        if self.path == "/retrieve":
            if not isinstance(req.get("data"), list) or not req["data"]:
                return self.reply(400, {"error": "data must be a non-empty list"})
            best = next((p for p in req["data"] if req["entity"] and req["entity"] in p), req["data"][-1])
            return self.reply(200, {"response": best})
        self.reply(404, {"error": "no such path"})

    def chat(self, req):
        model = req.get("model", "")
        n = bump(model)
        content = req["messages"][-1]["content"]
        ok = {"choices": [{"message": {"role": "assistant", "content": "echo: " + content}, "finish_reason": "stop"}],
              "usage": {"prompt_tokens": len(content.split()), "completion_tokens": 2}}
        if model.split("/")[-1].startswith("react") or model.endswith("-Instruct"):
            # Follows the standard prompt set's formats: search once, then answer Paris.
            if "Summary: <" in content:
                text = "Summary: noted"
            elif "no searches left" in content:
                text = "Thought: time to answer\nAction: Finish[Paris]"
            elif "Continue[] or Rethink[]" in content:
                text = "Thought: go on\nAction: Continue[]"
            else:
                text = "Thought: look it up\nAction: Search[France]"
            ok["choices"][0]["message"]["content"] = text
            return self.reply(200, ok)
        if model == "echo":
            auth = self.headers.get("Authorization")
            if auth:
                ok["choices"][0]["message"]["content"] += " auth=" + auth
            if "seed" in req:
                ok["choices"][0]["message"]["content"] += " seed=%d" % req["seed"]
            return self.reply(200, ok)
        if model == "flaky-429":
            return self.reply(429, {"error": {"message": "slow down"}}, headers=[("Retry-After", "0")]) if n <= 2 else self.reply(200, ok)
        if model == "retry-after-1":
            return self.reply(429, {"error": {"message": "slow down"}}, headers=[("Retry-After", "1")]) if n <= 1 else self.reply(200, ok)
        if model == "flaky-503":
            return self.reply(503, {"error": {"message": "overloaded"}}) if n <= 2 else self.reply(200, ok)
        if model == "always-500":
            return self.reply(500, {"error": {"message": "boom"}})
        if model == "missing":
            return self.reply(404, {"error": {"message": "The model `missing` does not exist."}})
        if model == "bad-json":
            return self.reply(200, raw=b"<html>not json{")
        if model == "slow":
            time.sleep(2)
            return self.reply(200, ok)
        if model == "torn":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b'{"choices": [')
            self.wfile.flush()
            self.close_connection = True
            return
        self.reply(400, {"error": {"message": "unknown test model " + model}})

def exit_with_parent():
    # The test process holds our stdin; when it ends (even by a crash), so do we.
    sys.stdin.read()
    import os
    os._exit(0)

threading.Thread(target=exit_with_parent, daemon=True).start()
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
