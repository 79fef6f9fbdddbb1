"""DLP for claude-bottle's egress-proxy: pipelock's default secret patterns applied to a request.

The egress-proxy scans what the *agent* sent (URL, headers, body) before it injects a credential, so
a secret the agent puts into a request is refused even on hosts pipelock passes through untouched
(every credentialed host: pipelock would otherwise refuse the injected credential itself).

The patterns are pipelock's `Defaults().DLP.Patterns` of the pinned version, written into routes.json
by the launcher (launcher/src/egress/dlp.rs). Matching follows pipelock's request scanning
(internal/proxy/bodyscan.go, internal/scanner): case-insensitive patterns, checksum validators (luhn,
mod97, wif), a body over the size limit or with a Content-Encoding refused outright (fail closed),
JSON bodies scanned string by string, and each text scanned as written, percent-decoded, and with
base64 or hex segments decoded. Not carried over: seed-phrase, canary and environment-leak detection.

Works on the Python of Debian bookworm (3.11) and later; no mitmproxy import here.
"""

import base64
import binascii
import hashlib
import json
import re
import unicodedata
import urllib.parse

# pipelock's request_body_scanning.max_body_bytes default.
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
# Segments shorter than this are not worth decoding (no default pattern matches fewer bytes).
MIN_ENCODED_SEGMENT = 16
MAX_DECODE_ROUNDS = 4
ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
# Runs that may be base64 (standard or URL-safe) or hex, long enough to hide a secret.
ENCODED_RUN = re.compile(r"[A-Za-z0-9+/_-]{%d,}={0,2}" % MIN_ENCODED_SEGMENT)
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class PatternError(Exception):
    """The pattern list is unusable: the proxy must not start without its DLP."""


def luhn(match):
    digits = [int(c) for c in match if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def mod97(match):
    iban = match.upper()
    rearranged = iban[4:] + iban[:4]
    try:
        number = int("".join(str(int(c, 36)) for c in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def wif(match):
    n = 0
    for c in match:
        i = B58.find(c)
        if i < 0:
            return False
        n = n * 58 + i
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    if len(raw) not in (37, 38) or raw[0] != 0x80:
        return False
    body, check = raw[:-4], raw[-4:]
    return hashlib.sha256(hashlib.sha256(body).digest()).digest()[:4] == check


VALIDATORS = {"luhn": luhn, "mod97": mod97, "wif": wif}


class Pattern:
    def __init__(self, entry):
        try:
            self.name = str(entry["name"])
            regex = str(entry["regex"])
            validator = entry.get("validator")
        except (KeyError, AttributeError, TypeError) as e:
            raise PatternError("a DLP pattern lacks %s" % e)
        try:
            # pipelock prefixes (?i); Python wants global flags first, which IGNORECASE gives.
            # ASCII: Go's \b \d \s are ASCII-only, Python's Unicode ones would miss `é4111…`.
            self.regex = re.compile(regex, re.IGNORECASE | re.ASCII)
        except re.error as e:
            raise PatternError("DLP pattern %r does not compile: %s" % (self.name, e))
        if validator is not None and validator not in VALIDATORS:
            raise PatternError("DLP pattern %r: unknown validator %r" % (self.name, validator))
        self.validator = VALIDATORS.get(validator)

    def search(self, text):
        for m in self.regex.finditer(text):
            if self.validator is None or self.validator(m.group(0)):
                return True
        return False


def load_patterns(doc):
    """Patterns from routes.json's `dlp` object."""
    if not isinstance(doc, dict) or not isinstance(doc.get("patterns"), list) or not doc["patterns"]:
        raise PatternError("routes.json has no dlp.patterns")
    return [Pattern(p) for p in doc["patterns"]], int(doc.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES))


def _decoded_variants(text):
    """The text normalised, percent-decoded, and its base64/hex runs decoded."""
    # NFKC and the zero-width removal leave ASCII alone (every pattern is ASCII), so the normalised
    # text stands in for the raw one rather than beside it: one pass over a large body, not two.
    norm = text if text.isascii() else unicodedata.normalize("NFKC", text).translate(ZERO_WIDTH)
    seen = [norm]

    def add(t):
        if t and t not in seen:
            seen.append(t)

    # Percent-decoding only where there is a percent sign: a `+` alone is a space in forms only,
    # and form bodies are decoded field by field before they get here.
    decoded = norm
    if "%" in decoded:
        for _ in range(MAX_DECODE_ROUNDS):
            nxt = urllib.parse.unquote(decoded)
            if nxt == decoded:
                break
            decoded = nxt
            add(decoded)
    for source in list(seen):
        for m in ENCODED_RUN.finditer(source):
            seg = m.group(0)
            for decode in (_b64, _hex):
                out = decode(seg)
                if out:
                    add(out)
    return seen


def _b64(seg):
    padded = seg + "=" * (-len(seg) % 4)
    for alt in (None, b"-_"):
        try:
            raw = base64.b64decode(padded, altchars=alt, validate=True)
        except (binascii.Error, ValueError):
            continue
        text = raw.decode("utf-8", "ignore")
        if text:
            return text
    return None


def _hex(seg):
    if len(seg) % 2 or not all(c in "0123456789abcdefABCDEF" for c in seg):
        return None
    try:
        return bytes.fromhex(seg).decode("utf-8", "ignore") or None
    except ValueError:
        return None


def scan_text(patterns, text):
    """The name of the first pattern `text` (or a decoding of it) trips, else None."""
    for variant in _decoded_variants(text):
        for p in patterns:
            if p.search(variant):
                return p.name
    return None


def _json_strings(value, out):
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out.append(repr(value))  # a card number can travel as a JSON number
    elif isinstance(value, dict):
        for k, v in value.items():
            out.append(str(k))
            _json_strings(v, out)
    elif isinstance(value, list):
        for v in value:
            _json_strings(v, out)


def body_texts(body, content_type):
    """Texts of a body as pipelock extracts them; raises ValueError for a body it would refuse."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    text = body.decode("utf-8", "replace")
    declared = media == "application/json" or media.endswith("+json")
    if declared or text.lstrip()[:1] in ("{", "["):
        # Servers parse JSON whatever the Content-Type says: escapes (\u0067hp_…) are decoded
        # for any body that parses as JSON, and the raw text is scanned beside the strings.
        try:
            doc = json.loads(text)
        except RecursionError:
            raise ValueError("JSON nested too deeply to check")
        except ValueError:
            if declared:
                raise ValueError("invalid JSON body")
            return [text]
        out = [] if declared else [text]
        try:
            _json_strings(doc, out)
        except RecursionError:
            raise ValueError("JSON nested too deeply to check")
        return out
    if media == "application/x-www-form-urlencoded":
        out = []
        for k, v in urllib.parse.parse_qsl(text, keep_blank_values=True):
            out += [k, v]
        return out
    # multipart, text and anything else: the raw text (never skipped for its type).
    return [text]


class Finding:
    """Why a request is refused: where, and which pattern (never the value)."""

    def __init__(self, where, reason):
        self.where = where
        self.reason = reason

    def __str__(self):
        return "%s %s" % (self.where, self.reason)


def scan_request(patterns, max_body, url, headers, body, content_type, content_encoding, skip_headers=()):
    """The first Finding for a request, or None. `headers` is (name, value) pairs; names in
    `skip_headers` (lowercase) are not scanned: the credential header a route is about to replace."""
    name = scan_text(patterns, url)
    if name:
        return Finding("URL", "matches DLP pattern %r" % name)
    skip = {h.lower() for h in skip_headers}
    for key, value in headers:
        if key.lower() in skip:
            continue
        name = scan_text(patterns, value)
        if name:
            return Finding("header %s" % key, "matches DLP pattern %r" % name)
    if not body:
        return None
    enc = (content_encoding or "").strip().lower()
    if enc and enc != "identity":
        return Finding("body", "uses Content-Encoding %r, which cannot be scanned" % enc)
    if len(body) > max_body:
        return Finding("body", "exceeds max_body_bytes (%d)" % max_body)
    try:
        texts = body_texts(body, content_type)
    except ValueError as e:
        return Finding("body", "is refused: %s" % e)
    # One scan over the strings joined by line breaks: no pattern spans a line break, so this finds
    # what scanning each string would, in one pass over a large JSON body.
    name = scan_text(patterns, "\n".join(texts))
    if name:
        return Finding("body", "matches DLP pattern %r" % name)
    return None
