"""Label and field selectors (k8s.io/apimachinery/pkg/labels and pkg/fields syntax)."""
import re

from .errors import bad_request

_TOKEN = re.compile(r"\s*(\(|\)|,|!=|==|=|!|[^\s(),!=<>]+|<|>)")


def _tokens(s):
    pos, out = 0, []
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m or m.end() == pos:
            if s[pos:].strip() == "":
                break
            raise bad_request("unable to parse requirement: invalid label selector %r" % s)
        out.append(m.group(1))
        pos = m.end()
    return out


class LabelSelector:
    """Parsed labelSelector: a conjunction of requirements (key, op, values)."""

    def __init__(self, text):
        self.reqs = []
        toks = _tokens(text or "")
        i = 0

        def need(cond, what):
            if not cond:
                raise bad_request("unable to parse requirement: %s in label selector %r"
                                  % (what, text))
        while i < len(toks):
            t = toks[i]
            if t == "!":
                need(i + 1 < len(toks), "missing key after '!'")
                self.reqs.append((toks[i + 1], "!exists", ()))
                i += 2
            else:
                key = t
                need(key not in "(),=", "expected a key")
                op = toks[i + 1] if i + 1 < len(toks) else ","
                if op == ",":
                    self.reqs.append((key, "exists", ()))
                    i += 1
                elif op in ("=", "==", "!=", ">", "<"):
                    val = toks[i + 2] if i + 2 < len(toks) and toks[i + 2] != "," else ""
                    self.reqs.append((key, {"==": "="}.get(op, op), (val,)))
                    i += 3 if val else 2
                elif op in ("in", "notin"):
                    need(i + 2 < len(toks) and toks[i + 2] == "(", "expected '('")
                    j, vals = i + 3, []
                    while j < len(toks) and toks[j] != ")":
                        if toks[j] != ",":
                            vals.append(toks[j])
                        j += 1
                    need(j < len(toks), "expected ')'")
                    self.reqs.append((key, op, tuple(vals)))
                    i = j + 1
                else:
                    need(False, "unexpected %r" % op)
            if i < len(toks):
                need(toks[i] == ",", "expected ','")
                i += 1

    def empty(self):
        return not self.reqs

    def matches(self, labels):
        labels = labels or {}
        for key, op, vals in self.reqs:
            has = key in labels
            v = labels.get(key)
            if op == "exists" and not has:
                return False
            if op == "!exists" and has:
                return False
            if op == "=" and v != vals[0]:
                return False
            if op == "!=" and has and v == vals[0]:
                return False
            if op == "in" and v not in vals:
                return False
            if op == "notin" and has and v in vals:
                return False
            if op in (">", "<"):
                try:
                    a, b = int(v), int(vals[0])
                except (TypeError, ValueError):
                    return False
                if (op == ">" and not a > b) or (op == "<" and not a < b):
                    return False
        return True


def _split_unescaped(s, sep):
    parts, cur, i = [], [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            cur.append(s[i:i + 2])
            i += 2
            continue
        if c == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(s):
    return re.sub(r"\\(.)", r"\1", s)


class FieldSelector:
    """Parsed fieldSelector; `getter(obj, field)` returns the field's string value or None
    when the field is not supported for the type (-> 400 like the real server)."""

    def __init__(self, text, supported):
        self.reqs = []
        for part in _split_unescaped(text or "", ","):
            if not part.strip():
                continue
            m = re.match(r"^\s*([^=!\s]+)\s*(==|=|!=)(.*)$", part)
            if not m:
                raise bad_request("invalid selector: '%s'; can't understand '%s'" % (text, part))
            field, op, val = m.group(1), m.group(2), _unescape(m.group(3).strip())
            if field not in supported:
                raise bad_request('field label not supported: %s' % field)
            self.reqs.append((field, "!=" if op == "!=" else "=", val))

    def empty(self):
        return not self.reqs

    def matches(self, fields):
        for field, op, val in self.reqs:
            have = fields.get(field, "")
            if (op == "=") != (have == val):
                return False
        return True
