"""E-mail backends for in-process tests of the sender, each a real Django backend with one fault."""

import errno
import os

from django.core.mail.backends.filebased import EmailBackend as FileBackend
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend


class FullDiskBackend(FileBackend):
    """The file backend on a disk that fills up: after `FullDiskBackend.room` messages each write
    raises ENOSPC (as a full disk does) until the test sets `room` again."""

    room: int | None = None

    def write_message(self, message):
        if FullDiskBackend.room is not None:
            if FullDiskBackend.room <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            FullDiskBackend.room -= 1
        super().write_message(message)


class WatchingBackend(LocmemBackend):
    """locmem, calling `WatchingBackend.watch()` before each message (a test reads the rows'
    states mid-send with it)."""

    watch = staticmethod(lambda: None)
    opened = 0  # connections opened

    def open(self):
        WatchingBackend.opened += 1
        return super().open()

    def send_messages(self, messages):
        WatchingBackend.watch()
        return super().send_messages(messages)
