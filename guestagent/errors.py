"""Typed errors: each carries the context a person needs to act on it."""

from __future__ import annotations


class GuestAgentError(Exception):
    """Base of every error guestagent raises on purpose."""


class ConfigError(GuestAgentError):
    """The agent's own configuration (file, command line, metadata key) is wrong."""


class SourceNotConfigured(GuestAgentError):
    """A collector lacks the settings it needs; it is skipped quietly."""


class SourceUnavailable(GuestAgentError):
    """A collector could not fetch its document this pass; its last good copy stays in effect."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"source {source}: {reason}")
        self.source = source
        self.reason = reason


class SourceGone(SourceUnavailable):
    """The source answered that what it serves does not exist (a deleted stack): polled again
    only after the longest backoff."""


class InvalidDeployment(GuestAgentError):
    """A deployment in the metadata is malformed; names the deployment and the field."""

    def __init__(self, deployment: str, field: str, reason: str):
        super().__init__(f"deployment {deployment}: field {field!r}: {reason}")
        self.deployment = deployment
        self.field = field
        self.reason = reason


class HookNotFound(GuestAgentError):
    """No built-in or external hook handles a deployment's group."""


class HookFailed(GuestAgentError):
    """A hook could not produce a result (tool missing, bad reply); the deployment fails."""


class SignalFailed(GuestAgentError):
    """A signal could not be delivered; `transient` says whether retrying may help."""

    def __init__(self, message: str, transient: bool):
        super().__init__(message)
        self.transient = transient


class StateError(GuestAgentError):
    """The state directory cannot be read or written (permissions, full disk)."""


class IllegalMove(GuestAgentError):
    """A journal move the state machine does not allow (a bug, never bad input)."""

    def __init__(self, key: str, state: str, move: str):
        super().__init__(f"deployment {key}: journal move {move!r} is not allowed from state "
                         f"{state!r}")
        self.key, self.state, self.move = key, state, move


class UntrustedPath(ConfigError, StateError):
    """A file or directory the agent must not act on: another user owns it or may write it,
    or it is a symbolic link, FIFO or device where a regular file belongs. A configuration
    error at start (exit 2), a state error while running."""

    def __init__(self, path: object, reason: str, what: str = "path"):
        super().__init__(f"{what} {path}: {reason}; refused")
        self.path = str(path)
        self.reason = reason


class KeystoneError(GuestAgentError):
    """Login or catalog lookup failed, for a source or a signal alike; `transient` is False
    when the credentials were refused. Callers say which source or signal it was."""

    def __init__(self, reason: str, transient: bool = True):
        super().__init__(f"keystone: {reason}")
        self.reason = reason
        self.transient = transient


class TransportError(GuestAgentError):
    """No HTTP reply came: refused, reset, cut short, timed out, or TLS failed. `kind` is a
    short name for messages (ConnectionError, ConnectTimeout, ReadTimeout, SSLError, ...)."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind} ({detail})" if detail else kind)
        self.kind = kind
        self.detail = detail

