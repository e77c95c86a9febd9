"""Fork up to 300 sleepers; exit 1 when the system refuses a fork."""

import os
import sys
import time

for count in range(300):
    try:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
    except OSError as exc:
        print(f"fork {count} refused: {exc}")
        sys.exit(1)
print("300 forks, none refused")
