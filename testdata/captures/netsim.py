#!/usr/bin/env python3
"""Responders and clients for make.sh: only ever talks to the addresses it
is given, which make.sh takes from 203.0.113.0/24, 198.51.100.0/24,
198.18.0.0/15 and 2001:db8::/32 inside its own network namespaces."""
import argparse
import ipaddress
import selectors
import socket
import socketserver
import struct
import sys
import threading


def addrs(spec):
    """'198.51.100.1-200' or '198.18.0.1-198.18.1.44' or a single address."""
    out = []
    for part in spec.split(","):
        if "-" not in part:
            out.append(part)
            continue
        a, b = part.split("-")
        lo = ipaddress.ip_address(a)
        hi = ipaddress.ip_address(b) if "." in b or ":" in b else ipaddress.ip_address(
            a.rsplit(".", 1)[0] + "." + b)
        out += [str(ipaddress.ip_address(i)) for i in range(int(lo), int(hi) + 1)]
    return out


class HTTP(socketserver.StreamRequestHandler):
    def handle(self):
        req = b""
        while b"\r\n\r\n" not in req:
            c = self.request.recv(4096)
            if not c:
                return
            req += c
        body = b"<html>" + b"x" * self.server.body + b"</html>\n"
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n" % len(body) + body)


class SMTP(socketserver.StreamRequestHandler):
    def handle(self):
        w = self.wfile.write
        w(b"220 mx.example.net ESMTP\r\n")
        data = False
        for line in self.rfile:
            if data:
                if line.strip() == b".":
                    data = False
                    w(b"250 2.0.0 queued\r\n")
                continue
            cmd = line[:4].upper()
            if cmd == b"DATA":
                data = True
                w(b"354 go ahead\r\n")
            elif cmd == b"QUIT":
                w(b"221 bye\r\n")
                return
            else:
                w(b"250 ok\r\n")


class Banner(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"SSH-2.0-OpenSSH_9.2\r\n")
        self.request.recv(100)


class TCP4(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 512


class TCP6(TCP4):
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


def dns_answer(q):
    if len(q) < 12:
        return None
    qid = q[:2]
    # Answer the question with one A record 198.51.100.53, TTL 300.
    end = 12
    while end < len(q) and q[end] != 0:
        end += q[end] + 1
    question = q[12:end + 5]
    ans = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 300, 4) + bytes([198, 51, 100, 53])
    return qid + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + question + ans


def dns_serve(socks):
    """Answer on one socket per address, so that every reply comes from the
    address that was asked (a wildcard socket would answer from the
    namespace's primary address)."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            q, peer = key.fileobj.recvfrom(2048)
            a = dns_answer(q)
            if a:
                key.fileobj.sendto(a, peer)


def serve(a):
    servers = []
    for spec in a.listen:
        kind, _, where = spec.partition("@")
        host, _, port = where.rpartition(":")
        host = host.strip("[]")
        fam6 = ":" in host
        if kind == "dns":  # dns@198.51.100.1-254:53: one socket per address
            socks = []
            for h in addrs(host):
                u = socket.socket(socket.AF_INET6 if ":" in h else socket.AF_INET, socket.SOCK_DGRAM)
                u.bind((h, int(port)))
                socks.append(u)
            threading.Thread(target=dns_serve, args=(socks,), daemon=True).start()
            continue
        else:
            h = {"http": HTTP, "smtp": SMTP, "ssh": Banner}[kind]
            s = (TCP6 if fam6 else TCP4)((host, int(port)), h)
            s.body = a.body
        servers.append(s)
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print("serving", flush=True)
    threading.Event().wait()


def connect(src, dst, port, timeout=2):
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if src:
        s.bind((src, 0))
    s.connect((dst, port))
    return s


def http_get(src, dst, port=80):
    s = connect(src, dst, port)
    s.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: netsim\r\nConnection: close\r\n\r\n" % dst.encode())
    while s.recv(65536):
        pass
    s.close()


def smtp_send(dst):
    s = connect(None, dst, 25)
    f = s.makefile("rwb")
    f.readline()
    for cmd in [b"EHLO spambox.example", b"MAIL FROM:<offer@spambox.example>",
                b"RCPT TO:<user@%s>" % dst.encode(), b"DATA"]:
        f.write(cmd + b"\r\n"); f.flush(); f.readline()
    f.write(b"Subject: cheap offer\r\n\r\nBuy now.\r\n.\r\n"); f.flush(); f.readline()
    f.write(b"QUIT\r\n"); f.flush(); f.readline()
    s.close()


def dns_query(dst, i):
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(1)
    name = b"".join(bytes([len(p)]) + p for p in [b"host%d" % i, b"example", b"net"]) + b"\x00"
    s.sendto(struct.pack(">HHHHHH", i & 0xffff, 0x0100, 1, 0, 0, 0) + name + b"\x00\x01\x00\x01", (dst, 53))
    s.recv(512)
    s.close()


def run(a):
    ok = fail = 0
    for i, t in enumerate(addrs(a.targets)):
        try:
            if a.cmd == "web-clients":  # targets are our source addresses
                http_get(t, a.server)
            elif a.cmd == "crawl":
                http_get(None, t)
            elif a.cmd == "smtp":
                smtp_send(t)
            elif a.cmd == "dns":
                dns_query(t, i + 1)
            ok += 1
        except OSError as e:
            fail += 1
            print(a.cmd, t, e, file=sys.stderr)
    print(f"{a.cmd}: {ok} answered, {fail} failed", flush=True)
    return 0 if fail == 0 else 1


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--body", type=int, default=200)
    s.add_argument("listen", nargs="+", help="kind@addr:port, kind in http smtp ssh dns")
    for c in ("web-clients", "crawl", "smtp", "dns"):
        q = sub.add_parser(c)
        q.add_argument("--server", default="")
        q.add_argument("targets")
    a = p.parse_args()
    if a.cmd == "serve":
        serve(a)
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
