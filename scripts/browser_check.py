#!/usr/bin/env python3
"""Drives headless Chromium against Baton's web view through the DevTools protocol (standard library only).

    browser_check.py CHROMIUM BASE_URL TOKEN TRIGGER_JOB SCREENSHOT

Logs in with TOKEN through the login form, reads the timeline's runs from the DOM (each `g.run`'s data-run,
data-state and data-job), opens the jobs page and clicks TRIGGER_JOB's Trigger button, waits for the page's
answer, and saves a screenshot of the timeline to SCREENSHOT. Prints one JSON object: {"timeline": [[run,
state, job], ...], "flash": "...", "title": "...", "errors": [...]}. Exits non-zero when Chromium cannot be
driven.
"""
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request


class DevTools:
    """A minimal WebSocket client (RFC 6455, text frames) speaking the DevTools protocol to one page."""

    def __init__(self, url):
        assert url.startswith("ws://")
        host_port, path = url[5:].split("/", 1)
        host, port = host_port.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("DevTools closed the connection during the handshake")
            answer += chunk
        if b" 101 " not in answer.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"DevTools refused the WebSocket: {answer[:200]!r}")
        self.buffer = answer.split(b"\r\n\r\n", 1)[1]
        self.next_id = 0
        self.events = []

    def _read(self, count):
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("DevTools closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def _frame(self):
        message = b""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(length)
            message += payload
            if first & 0x80:
                return message

    def send(self, method, **params):
        self.next_id += 1
        data = json.dumps({"id": self.next_id, "method": method, "params": params}).encode()
        header = bytes([0x81])
        if len(data) < 126:
            header += bytes([0x80 | len(data)])
        elif len(data) < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(data))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(data))
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
        while True:
            reply = json.loads(self._frame())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def evaluate(self, expression):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"script failed: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression, seconds=20):
        end = time.time() + seconds
        while time.time() < end:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        return None

    def open(self, url):
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && location.href === " + json.dumps(url), 30)


def main():
    chromium, base, token, job, screenshot = sys.argv[1:6]
    profile = tempfile.mkdtemp(prefix="bt-chromium-")
    browser = subprocess.Popen(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", f"--user-data-dir={profile}",
         "--window-size=1400,900", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        end = time.time() + 60
        while not (os.path.exists(port_file) and open(port_file).read().count("\n") >= 1) and time.time() < end:
            if browser.poll() is not None:
                raise RuntimeError(f"chromium exited with status {browser.returncode}")
            time.sleep(0.1)
        port = open(port_file).read().split("\n")[0].strip()
        pages = []
        while not pages and time.time() < end:
            targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
            pages = [t for t in targets if t.get("type") == "page"]
            time.sleep(0.1)
        page = DevTools(pages[0]["webSocketDebuggerUrl"])
        page.send("Page.enable")
        page.send("Runtime.enable")
        out = {"errors": []}

        # Log in through the form: the cookie it sets is what the other pages need.
        page.open(base + "/login")
        page.evaluate(
            "document.querySelector('input[name=token]').value = " + json.dumps(token) + ";"
            "document.querySelector('form.login').submit(); true")
        if not page.wait_for("location.pathname === '/' && document.readyState === 'complete' && !!document.querySelector('#jobs')"):
            out["errors"].append("the login did not lead to the jobs page")

        page.open(base + "/timeline?span=1h")
        out["title"] = page.evaluate("document.title")
        out["timeline"] = page.evaluate(
            "[...document.querySelectorAll('svg#timeline g.run')].map(g => [g.dataset.run, g.dataset.state, g.dataset.job])")
        shot = page.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        with open(screenshot, "wb") as f:
            f.write(base64.b64decode(shot["data"]))

        page.open(base + "/")
        clicked = page.evaluate(
            "(() => { const b = document.querySelector('button[data-action=trigger][data-job=" + json.dumps(job) + "]');"
            " if (!b) return false; b.click(); return true; })()")
        if not clicked:
            out["errors"].append(f"no Trigger button for {job}")
        out["flash"] = page.wait_for("document.getElementById('flash').textContent", 20) or ""
        out["live"] = page.wait_for("document.getElementById('live').classList.contains('on')", 20) or False
        print(json.dumps(out))
    finally:
        browser.kill()
        browser.wait()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
