"""Loopback chat server for bench/sampling: every reply comes after a fixed latency, in the
format the standard prompt set asks for (search until no searches are left, then answer), so
dialogues run their full length. Prints its port; POST /count gives the number of calls."""
import json, sys, threading, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LATENCY = float(sys.argv[1]) if len(sys.argv) > 1 else 0.05
calls = 0
lock = threading.Lock()

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def reply(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        global calls
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path == "/count":
            return self.reply({"count": calls})
        with lock:
            calls += 1
        time.sleep(LATENCY)
        content = req["messages"][-1]["content"]
        if "Summary: <" in content:
            text = "Summary: noted"
        elif "no searches left" in content:
            text = "Thought: time to answer\nAction: Finish[yes]"
        elif "Continue[] or Rethink[]" in content:
            text = "Thought: go on, " + uuid.uuid4().hex + "\nAction: Continue[]"
        else:
            # A different thought each time, as a real model's would differ between contexts.
            text = "Thought: look it up, " + uuid.uuid4().hex + "\nAction: Search[" + content.split("Question: ")[1].split()[0] + "]"
        self.reply({"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": len(content.split()), "completion_tokens": 8}})

class Server(ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True

server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
