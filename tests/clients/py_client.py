#!/usr/bin/env python3
"""Sends an HTTP request the way a Python user would, with the standard
library's `urllib.request` or `http.client`, and prints each answer as one
JSON line: {"status": 413, "headers": {...}, "body": "..."} or, when the
library raised instead, {"error": "BrokenPipeError: ..."}.

    py_client.py --lib urllib|http.client [--method POST] [-H 'Name: value']...
                 [--body-file PATH | --body-size N] [--chunked] [--repeat N] URL

A body file is sent as an open file, as uploads usually are, with its
Content-Length unless --chunked asks for chunked transfer encoding. Requests
are sent one after another, each on a new connection.
"""

import argparse
import http.client
import io
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT_S = 60


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--lib", choices=["urllib", "http.client"], required=True)
    p.add_argument("--method", default="POST")
    p.add_argument("-H", "--header", action="append", default=[])
    body = p.add_mutually_exclusive_group()
    body.add_argument("--body-file")
    body.add_argument("--body-size", type=int)
    p.add_argument("--chunked", action="store_true")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("url")
    return p.parse_args()


def open_body(args):
    """A fresh body for one request and its size (None without a body)."""
    if args.body_file:
        return open(args.body_file, "rb"), os.path.getsize(args.body_file)
    if args.body_size is not None:
        return io.BytesIO(b"x" * args.body_size), args.body_size
    return None, None


def headers_of(args, size):
    headers = {}
    for h in args.header:
        name, _, value = h.partition(":")
        headers[name.strip()] = value.strip()
    # Without a length, both libraries send a file body chunked by themselves.
    if size is not None and not args.chunked:
        headers["Content-Length"] = str(size)
    return headers


def with_urllib(args):
    body, size = open_body(args)
    request = urllib.request.Request(
        args.url, data=body, headers=headers_of(args, size), method=args.method
    )
    try:
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()
    finally:
        if body is not None:
            body.close()


def with_http_client(args):
    url = urllib.parse.urlsplit(args.url)
    path = url.path + ("?" + url.query if url.query else "")
    body, size = open_body(args)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=TIMEOUT_S)
    try:
        conn.request(
            args.method,
            path,
            body=body,
            headers=headers_of(args, size),
            encode_chunked=args.chunked,
        )
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()
        if body is not None:
            body.close()


def main():
    args = parse_args()
    send = with_urllib if args.lib == "urllib" else with_http_client
    for _ in range(args.repeat):
        try:
            status, headers, body = send(args)
            line = {
                "status": status,
                "headers": {k.lower(): v for k, v in headers.items()},
                "body": body.decode("utf-8", "replace"),
            }
        except Exception as e:  # the point is to report what the library raised
            line = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    sys.exit(main())
