"""Listens on $PORT (connections are accepted by the kernel) and never answers."""

import os
import signal
import socket
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("", int(os.environ["PORT"])))
sock.listen(64)
with open(os.environ["PIDFILE"], "a") as pidfile:
    pidfile.write(f"{os.getpid()}\n")
while True:
    time.sleep(1000)
