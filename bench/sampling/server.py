"""Loopback chat server for bench/sampling: every reply comes after a fixed latency, in the
format the standard prompt set asks for (search until no searches are left, then answer), so
dialogues run their full length. One asyncio event loop with keep-alive connections, so the
server itself costs little CPU and the latency is what clients wait for. Prints its port;
POST /count gives the number of chat calls so far."""
import asyncio, json, sys, uuid

LATENCY = float(sys.argv[1]) if len(sys.argv) > 1 else 0.05
calls = 0


def answer(content):
    if "Summary: <" in content:
        return "Summary: noted"
    if "no searches left" in content:
        return "Thought: time to answer\nAction: Finish[yes]"
    if "Continue[] or Rethink[]" in content:
        return "Thought: go on, " + uuid.uuid4().hex + "\nAction: Continue[]"
    # A different thought each time, as a real model's would differ between contexts.
    return "Thought: look it up, " + uuid.uuid4().hex + "\nAction: Search[" + content.split("Question: ")[1].split()[0] + "]"


async def handle(reader, writer):
    global calls
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            length = 0
            for line in lines[1:]:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            body = json.loads(await reader.readexactly(length) if length else b"{}")
            if path == "/count":
                out = {"count": calls}
            else:
                calls += 1
                await asyncio.sleep(LATENCY)
                content = body["messages"][-1]["content"]
                out = {"choices": [{"message": {"role": "assistant", "content": answer(content)}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": len(content.split()), "completion_tokens": 8}}
            data = json.dumps(out).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionResetError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
