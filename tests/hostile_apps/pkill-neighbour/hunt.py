"""Wait for the neighbour's server, then try to kill it with pkill for a second."""

import os
import socket
import subprocess
import sys
import time

port = int(os.environ["NEIGHBOUR_PORT"])
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        time.sleep(0.05)
else:
    print("the neighbour never answered")
    sys.exit(1)
print("the neighbour answers; pkill -9 -f hostile-neighbour-server")
end = time.monotonic() + 1
while time.monotonic() < end:
    subprocess.run(["pkill", "-9", "-f", "hostile-neighbour-server"], check=False)
    time.sleep(0.05)
