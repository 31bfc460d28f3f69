"""metav1.Status error bodies, shaped like k8s.io/apimachinery/pkg/api/errors (errors.go)."""


class ApiError(Exception):
    """An error answered to the client as a metav1.Status with an HTTP code."""

    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self):
        s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            s["details"] = self.details
        return s


def qualified(rt):
    """'secrets' for core, 'ingresses.networking.k8s.io' for a group (GroupResource.String())."""
    return rt.plural if not rt.group else "%s.%s" % (rt.plural, rt.group)


def _details(rt, name):
    d = {"name": name, "kind": rt.plural}
    if rt.group:
        d["group"] = rt.group
    return d


def not_found(rt, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (qualified(rt), name), _details(rt, name))


def already_exists(rt, name):
    return ApiError(409, "AlreadyExists", '%s "%s" already exists' % (qualified(rt), name),
                    _details(rt, name))


def conflict(rt, name, why=None):
    why = why or ("the object has been modified; please apply your changes to the latest "
                  "version and try again")
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s'
                    % (qualified(rt), name, why), _details(rt, name))


def invalid(rt, name, causes):
    """causes: list of (field, reason, message) -> 422 Invalid (details.kind is the Kind)."""
    msgs = ["%s: %s" % (f, m) for f, _, m in causes]
    body = msgs[0] if len(msgs) == 1 else "[" + ", ".join(msgs) + "]"
    d = {"name": name, "kind": rt.kind,
         "causes": [{"reason": r, "message": m, "field": f} for f, r, m in causes]}
    if rt.group:
        d["group"] = rt.group
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (rt.kind, name, body), d)


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def expired(message):
    return ApiError(410, "Expired", message)


def unsupported_media(ct):
    return ApiError(415, "UnsupportedMediaType",
                    'the body of the request was in an unknown format - accepted media types '
                    'include: application/json-patch+json, application/merge-patch+json, '
                    'application/apply-patch+yaml' if ct else "missing content type")


def method_not_allowed(method):
    return ApiError(405, "MethodNotAllowed",
                    "the server does not allow this method on the requested resource")


def path_not_found():
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def unauthorized():
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(message, rt=None, name=""):
    return ApiError(403, "Forbidden", message, _details(rt, name) if rt else None)


def too_many_requests(retry_after):
    return ApiError(429, "TooManyRequests",
                    "the server has received too many requests and has asked us to try again "
                    "later", {"retryAfterSeconds": retry_after},
                    {"Retry-After": str(retry_after)})


def internal(message):
    return ApiError(500, "InternalError", "Internal error occurred: %s" % message,
                    {"causes": [{"message": message}]})


def timeout_too_large_rv():
    return ApiError(504, "Timeout", "Too large resource version",
                    {"causes": [{"reason": "ResourceVersionTooLarge",
                                 "message": "Too large resource version"}],
                     "retryAfterSeconds": 1})
