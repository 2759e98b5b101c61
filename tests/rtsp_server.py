#!/usr/bin/python3
"""A live RTSP camera on loopback for the tests: rtsp://127.0.0.1:PORT/cam serves an endless
H.264 test pattern at 25 fps. Run as a separate process so tests can kill it (SIGKILL closes
its sockets, as a rebooting camera does) or freeze it (SIGSTOP keeps them open, silent).
SIGUSR1 drops every connected client while the server stays up, as a camera does that
restarts its streaming service or ends a session; SIGUSR2 also takes the stream away, so that
clients are refused (404) until the next SIGUSR2 puts it back.

Usage: /usr/bin/python3 tests/rtsp_server.py PORT
Needs Debian's python3-gi and gir1.2-gst-rtsp-server-1.0 (scripts/setup installs them).
"""
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
port = sys.argv[1]
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=25/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 "
    "! rtph264pay name=pay0 pt=96 config-interval=1 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory("/cam", factory)
server.attach(None)


def drop_clients():
    server.client_filter(lambda _server, _client: GstRtspServer.RTSPFilterResult.REMOVE)
    # Keep the handler for the next signal.
    return GLib.SOURCE_CONTINUE


def toggle_mount():
    mounts = server.get_mount_points()
    if mounts.match("/cam")[0] is None:
        mounts.add_factory("/cam", factory)
    else:
        mounts.remove_factory("/cam")
        drop_clients()
    return GLib.SOURCE_CONTINUE


GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGUSR1, drop_clients)
GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGUSR2, toggle_mount)
print("ready", flush=True)
GLib.MainLoop().run()
