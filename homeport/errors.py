"""The one exception root of homeport, and the whole tree under it.

Every error homeport raises on purpose is a `HomeportError`; `except HomeportError`
catches them all, and nothing else. Each package keeps its own errors in its own module,
hung under one package root::

    HomeportError                      homeport.errors (this module)
    ├── engine domain errors           homeport.core.errors: each has a wire `code`
    │   ├── InvalidArgument            bad input; nothing was written
    │   │   ├── MissingCredentials     homeport.core.security: a role started without them
    │   │   └── SettingsError          homeport.core.config: a bad setting (also a ValueError)
    │   ├── Fenced                     the caller's epoch or lease token is stale
    │   ├── WrongRegion                the key lives in another region (redirect)
    │   ├── NotReplicated              WAIT reached fewer replicas than asked
    │   ├── TaskNotFound               no record of that task id
    │   ├── AlreadyFinished            the task reached a final status already
    │   ├── Unavailable                Redis or PostgreSQL could not be reached
    │   ├── ResourceExhausted          a server is out of memory; retry later
    │   └── BackendFailed              a server refused a command for another reason
    ├── Cancelled                      homeport.core.app: a handler ends a cancelled task
    ├── GatewayError                   homeport.router.errors: an SDK call failed
    │   ├── InvalidRequest             refused before anything was written
    │   ├── Misrouted                  WrongRegionError, FencedError: follow the redirect
    │   ├── TaskNotFoundError, AlreadyFinishedError
    │   ├── NotAllowed                 missing or wrong token, or not an admin token
    │   ├── RetryableError             NotReplicatedError, TransientError
    │   └── BackendFailedError         a server refused a command: report, don't retry
    ├── ChildFailed                    homeport.core.supervisor: a child did not start
    ├── TlsConfigError                 homeport.router.tls (also a ValueError)
    ├── CodegenError                   homeport.router.codegen (also a RuntimeError)
    ├── RegionsError                   homeport.regions.errors
    │   ├── TopologyError, LaunchError, ClusterStateError
    │   ├── PromotionError, ProtectionError     (regions.promotion, regions.protection)
    │   ├── ClusterFailoverError                (regions.clustercopy): a Cluster-mode step
    │   ├── StaleRoute, NotLeader               (regions.routing)
    │   └── ControlStoreUnavailable             (regions.etcd): no etcd member answered
    ├── ToxiproxyError                 homeport.regions.toxiproxy (also a RuntimeError)
    ├── ChaosError                     homeport.chaos.errors
    │   ├── ScenarioError, FaultError, RunError
    │   └── RpoUnpredictable           (chaos.rpo): a history the RPO model cannot use
    ├── HistoryError                   homeport.chaos.history (also a ValueError)
    ├── LoadTestError                  homeport.loadtest.errors
    │   └── WorkloadError, StackError, RunError, BatchRefused
    ├── SimulationError                homeport.simulation.errors
    │   ├── ParameterError             UnstableLoadError, EmptyTraceError
    │   └── CalibrationError
    └── TaskNowhere                    homeport.console.gateways

`code` is the wire-visible class of a failure (`ErrorCode`). The engine's errors set
their own; everything else is UNAVAILABLE unless it says otherwise (a `GatewayError`
reports the code its gateway gave). The gateway maps codes to gRPC statuses in exactly
one table (router/errors.py).
"""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    """Stable, wire-visible name of a failure class."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    FENCED = "FENCED"
    WRONG_REGION = "WRONG_REGION"
    NOT_REPLICATED = "NOT_REPLICATED"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_FINISHED = "ALREADY_FINISHED"
    UNAVAILABLE = "UNAVAILABLE"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    BACKEND_FAILED = "BACKEND_FAILED"


class HomeportError(Exception):
    """Root of every error homeport raises on purpose; `code` says which class of failure
    it is."""

    code: ErrorCode = ErrorCode.UNAVAILABLE
