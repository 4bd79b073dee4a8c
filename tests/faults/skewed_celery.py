"""`python tests/faults/skewed_celery.py <celery args>`: Celery with this process's clock
moved by FAULTS_CLOCK_OFFSET seconds (time-machine; the clock keeps ticking). The database's
clock is untouched: row 18 of the fault suite, an application host whose clock is off."""

import datetime
import os
import sys

import time_machine

if __name__ == "__main__":
    offset = datetime.timedelta(seconds=float(os.environ["FAULTS_CLOCK_OFFSET"]))
    time_machine.travel(datetime.datetime.now(datetime.UTC) + offset, tick=True).start()
    from celery.__main__ import main

    sys.exit(main())
