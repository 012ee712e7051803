#!/usr/bin/env python3
"""Peer of bench_html: the crawl fixture's 50 pages parsed and their 20 (href, title)
pairs taken, checked against expected.tsv, ROUNDS timed passes.

  py_html.py SITE_DIR {lxml|bs4} [ROUNDS]

lxml: lxml.html.fromstring + the same class-contains XPath; bs4: BeautifulSoup with
html.parser and find_all("a", class_="post-item-title"), the tutorial's parser. Prints
{"variant": "xpath", "metric": "pages_per_s"} as bench_html does."""
import json
import sys
import time

XPATH = ('//a[contains(concat(" ", normalize-space(@class), " "), " post-item-title ")]')


def lxml_pairs(html):
    import lxml.html
    doc = lxml.html.fromstring(html)
    return [(a.get("href"), a.text_content()) for a in doc.xpath(XPATH)]


def bs4_pairs(html):
    from bs4 import BeautifulSoup
    soup = BeautifulSoup(html, "html.parser")
    return [(a.get("href"), a.get_text()) for a in soup.find_all("a", class_="post-item-title")]


def main():
    site, which = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else (20 if which == "lxml" else 2)
    pairs = {"lxml": lxml_pairs, "bs4": bs4_pairs}[which]
    pages = [open("%s/page-%02d.html" % (site, i), "rb").read() for i in range(1, 51)]
    want = [tuple(l.split("\t")) for l in open(site + "/expected.tsv", encoding="utf-8").read().splitlines()]
    got = []
    for p in pages:
        got.extend(pairs(p))
    assert got == want, "extraction differs from expected.tsv"
    t0 = time.perf_counter()
    for _ in range(rounds):
        for p in pages:
            assert len(pairs(p)) == 20
    secs = time.perf_counter() - t0
    print(json.dumps({"workload": "html", "variant": "xpath", "impl": which,
                      "metric": "pages_per_s", "value": 50 * rounds / secs, "unit": "pages/s"}))


if __name__ == "__main__":
    main()
