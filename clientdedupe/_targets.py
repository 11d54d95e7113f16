"""The table of client classes clientdedupe knows how to deduplicate.

Adding an SDK generated from the same template as openai, groq and cerebras is one
``Sdk`` and one ``Target`` per class here, not a new code path. This module is on the
start-up path (``install()`` reads it before any SDK is imported), so it imports nothing
beyond the standard library basics.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

# Read by httpx / httpx2 when the SDK builds its own HTTP client (``trust_env=True``):
# proxies (both spellings, as urllib.request.getproxies() reads them; REQUEST_METHOD
# makes it ignore HTTP_PROXY), CA bundles, and the TLS key log file.
HTTP_ENV = (
    "REQUEST_METHOD",
    "SSLKEYLOGFILE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)

EnvPlan = tuple[tuple[str, tuple[str, ...]], ...]


class Sdk:
    """One installable SDK: what its targets share."""

    __slots__ = ("distribution", "package", "resource_bases", "supported")

    def __init__(
        self,
        distribution: str,
        package: str,
        resource_bases: tuple[str, ...],
        supported: tuple[int, int],
    ) -> None:
        #: The pip name, used to report the installed version.
        self.distribution = distribution
        #: The import package whose own code may assign attributes on its clients
        #: without retiring them (see SPEC §6: only a *holder's* change retires).
        self.package = package
        #: ``"module:Class"`` of the base classes of the SDK's resource objects
        #: (``client.chat.completions``), whose attribute assignments retire a client.
        self.resource_bases = resource_bases
        #: Supported major versions, as a half-open range ``(first, end)``.
        self.supported = supported


class Target:
    """One client class: where it lives and what its constructor reads."""

    __slots__ = ("env", "env_always", "is_async", "module", "name", "sdk")

    def __init__(
        self,
        sdk: Sdk,
        module: str,
        name: str,
        *,
        is_async: bool,
        env: EnvPlan,
        env_always: tuple[str, ...] = (),
    ) -> None:
        self.sdk = sdk
        #: The public module the class is imported from; its import is watched.
        self.module = module
        self.name = name
        self.is_async = is_async
        #: (parameter, variables the constructor reads when that parameter is left
        #: out or None). ``http_client`` maps to the HTTP library's variables.
        self.env = env
        #: Variables read whatever the arguments.
        self.env_always = env_always

    @property
    def qualname(self) -> str:
        """``"module.Class"``, the name users pass to ``install(targets=...)``."""
        return f"{self.module}.{self.name}"

    def __repr__(self) -> str:
        return f"<Target {self.qualname}>"


OPENAI = Sdk(
    "openai",
    "openai",
    ("openai._resource:SyncAPIResource", "openai._resource:AsyncAPIResource"),
    (1, 4),
)
GROQ = Sdk(
    "groq",
    "groq",
    ("groq._resource:SyncAPIResource", "groq._resource:AsyncAPIResource"),
    (0, 2),
)
CEREBRAS = Sdk(
    "cerebras-cloud-sdk",
    "cerebras.cloud.sdk",
    (
        "cerebras.cloud.sdk._resource:SyncAPIResource",
        "cerebras.cloud.sdk._resource:AsyncAPIResource",
    ),
    (1, 2),
)

_HTTP = ("http_client", HTTP_ENV)
_OPENAI_ENV: EnvPlan = (
    ("api_key", ("OPENAI_API_KEY",)),
    ("admin_api_key", ("OPENAI_ADMIN_KEY",)),
    ("organization", ("OPENAI_ORG_ID",)),
    ("project", ("OPENAI_PROJECT_ID",)),
    ("webhook_secret", ("OPENAI_WEBHOOK_SECRET",)),
    ("base_url", ("OPENAI_BASE_URL",)),
    _HTTP,
)
_AZURE_ENV: EnvPlan = (
    ("api_key", ("AZURE_OPENAI_API_KEY",)),
    ("azure_ad_token", ("AZURE_OPENAI_AD_TOKEN",)),
    ("azure_endpoint", ("AZURE_OPENAI_ENDPOINT",)),
    ("api_version", ("OPENAI_API_VERSION",)),
    ("admin_api_key", ("OPENAI_ADMIN_KEY",)),
    ("organization", ("OPENAI_ORG_ID",)),
    ("project", ("OPENAI_PROJECT_ID",)),
    ("webhook_secret", ("OPENAI_WEBHOOK_SECRET",)),
    _HTTP,
)
_GROQ_ENV: EnvPlan = (("api_key", ("GROQ_API_KEY",)), ("base_url", ("GROQ_BASE_URL",)), _HTTP)
_CEREBRAS_ENV: EnvPlan = (
    ("api_key", ("CEREBRAS_API_KEY",)),
    ("base_url", ("CEREBRAS_BASE_URL",)),
    _HTTP,
)

# openai 2.x and 3.x merge this into the headers whatever default_headers says.
_OPENAI_ALWAYS = ("OPENAI_CUSTOM_HEADERS",)

BUILTIN_TARGETS: tuple[Target, ...] = (
    Target(OPENAI, "openai", "OpenAI", is_async=False, env=_OPENAI_ENV, env_always=_OPENAI_ALWAYS),
    Target(
        OPENAI, "openai", "AsyncOpenAI", is_async=True, env=_OPENAI_ENV, env_always=_OPENAI_ALWAYS
    ),
    Target(
        OPENAI, "openai", "AzureOpenAI", is_async=False, env=_AZURE_ENV, env_always=_OPENAI_ALWAYS
    ),
    Target(
        OPENAI,
        "openai",
        "AsyncAzureOpenAI",
        is_async=True,
        env=_AZURE_ENV,
        env_always=_OPENAI_ALWAYS,
    ),
    Target(
        GROQ, "groq", "Groq", is_async=False, env=_GROQ_ENV, env_always=("GROQ_CUSTOM_HEADERS",)
    ),
    Target(
        GROQ, "groq", "AsyncGroq", is_async=True, env=_GROQ_ENV, env_always=("GROQ_CUSTOM_HEADERS",)
    ),
    Target(
        CEREBRAS,
        "cerebras.cloud.sdk",
        "Cerebras",
        is_async=False,
        env=_CEREBRAS_ENV,
        env_always=("CEREBRAS_CUSTOM_HEADERS",),
    ),
    Target(
        CEREBRAS,
        "cerebras.cloud.sdk",
        "AsyncCerebras",
        is_async=True,
        env=_CEREBRAS_ENV,
        env_always=("CEREBRAS_CUSTOM_HEADERS",),
    ),
)


def select(
    names: Iterable[str] | None, table: tuple[Target, ...] = BUILTIN_TARGETS
) -> list[Target]:
    """The targets named by ``names``: SDK modules (``"openai"``) or classes
    (``"groq.AsyncGroq"``). ``None`` selects all of them.

    Raises ``ValueError`` naming the valid targets when a name is unknown.
    """
    if names is None:
        return list(table)
    if isinstance(names, str):
        names = [names]
    chosen: list[Target] = []
    for raw in names:
        name = raw.strip()
        matched = [t for t in table if name in (t.module, t.qualname)]
        if not matched:
            valid = sorted({t.module for t in table} | {t.qualname for t in table})
            raise ValueError(
                f"unknown clientdedupe target {name!r}; valid targets: {', '.join(valid)}"
            )
        chosen.extend(t for t in matched if t not in chosen)
    return chosen
