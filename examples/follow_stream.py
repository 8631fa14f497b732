#!/usr/bin/env python3
"""Follow orderflow's live series stream and print each bar as it changes.

Standard library only. Usage:

    examples/follow_stream.py [--url http://127.0.0.1:8050] [--series BTC-USDT/1m,ETH-USDT/1m]
    examples/follow_stream.py --series BTC-USDT/1m,BTC-USDT/footprint,BTC-USDT/heatmap

Without --series it follows every series of the first instrument in
/api/series. It reconnects by itself (sending Last-Event-ID, so the viewer
replays what was missed or sends a reset) and stops on Ctrl-C.
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

COLUMNS = ("ts", "open", "high", "low", "close", "volume",
           "obi_o", "obi_h", "obi_l", "obi_c", "cvd_o", "cvd_h", "cvd_l", "cvd_c")


def utc(ms):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


def print_view(kind, data):
    """A footprint or heatmap event: its bars as stored (docs/formats.md)."""
    view = data["series"].rsplit("/", 1)[1]
    for row in data["bars"]:
        if view == "footprint":
            buy = sum(r[1] for r in row[1])
            sell = sum(r[2] for r in row[1])
            what = f"{len(row[1])} prices (tick {data['tick']})  buy {buy:.6g}  sell {sell:.6g}"
        else:
            bids, asks = row[1], row[2]
            best = f"{bids[0][0] if bids else '-'} / {asks[0][0] if asks else '-'}"
            what = f"{len(bids)} bids, {len(asks)} asks  best {best}"
        print(f"{kind:8} {data['series']:20} {utc(row[0])}  {what}", flush=True)


def print_bars(kind, data):
    if "window_ms" in data:
        print_view(kind, data)
        return
    for row in data["bars"]:
        bar = dict(zip(COLUMNS, row))
        price = ("O {open} H {high} L {low} C {close}".format(**bar)
                 if bar["open"] is not None else "no trades")
        print(f"{kind:8} {data['series']:16} {utc(bar['ts'])}  {price}  V {bar['volume']}"
              f"  OBI {bar['obi_c']:+.4f}  CVD {bar['cvd_c']}", flush=True)


def events(response):
    """Yields (event, id, data) from a server-sent-events response."""
    name, ident, data = "message", None, []
    for raw in response:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield name, ident, "\n".join(data)
            name, data = "message", []
        elif line.startswith(":"):
            continue  # keep-alive comment
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                ident = value


def default_series(url):
    with urllib.request.urlopen(url + "/api/series", timeout=10) as r:
        index = json.load(r)
    if not index["series"]:
        sys.exit("the viewer has no series yet; is the processor running?")
    first = index["series"][0]["instrument"]
    return ",".join(s["id"] for s in index["series"] if s["instrument"] == first)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:8050")
    ap.add_argument("--series", help="comma-separated ids, e.g. BTC-USDT/1m,BTC-USDT/5m")
    args = ap.parse_args()
    url = args.url.rstrip("/")
    series = args.series or default_series(url)
    last_id = None
    while True:
        request = urllib.request.Request(f"{url}/api/stream?series={series}")
        if last_id:
            request.add_header("Last-Event-ID", last_id)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                for name, ident, data in events(response):
                    last_id = ident or last_id
                    payload = json.loads(data)
                    if name == "status":
                        print(f"status   {payload.get('state')} "
                              f"{100 * payload.get('progress', 0):.1f}%", flush=True)
                    else:
                        print_bars(name, payload)
        except urllib.error.HTTPError as e:
            sys.exit(f"{url}: {e.code} {json.load(e).get('error', e.reason)}")
        except (urllib.error.URLError, OSError) as e:
            print(f"stream lost ({e}); reconnecting", file=sys.stderr, flush=True)
            time.sleep(1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
