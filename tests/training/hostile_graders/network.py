# expect: OSError: [Errno 101] Network is unreachable
# Reach a listener the test started on the host's loopback, then the outside world.
import socket


def grade(completion, port, **row):
    try:
        socket.create_connection(("127.0.0.1", int(port)), timeout=2).close()
        return 1.0
    except ConnectionRefusedError:
        pass  # the sandbox's own loopback: nobody listens there
    socket.create_connection(("1.1.1.1", 80), timeout=2).close()
    return 1.0
