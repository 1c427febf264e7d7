"""Where the trials live: the optuna storage (an RDB URL, opened with retries) and a study's identity.

:func:`open_storage` opens ``sqlite:///...``, ``postgresql://...`` or ``mysql://...``
(workers starting together may race to create the tables: the loser tries again);
:func:`study_identity` is what a worker joining a shared study must agree on.
"""

from __future__ import annotations

import time
from typing import Any

from ..config import ExperimentConfig, SolverConfig
from ...errors import ConfigError
from ...metrics import Metric
from ...options import options_to_dict
from .space import Dimension

__all__ = ["load_optuna", "shown_url", "open_storage", "study_identity"]

_STORAGE_SCHEMES = ("sqlite", "postgresql", "mysql")


def load_optuna():
    try:
        import optuna
    except ImportError:  # pragma: no cover - optuna is the tune extra
        raise ConfigError("unfold tune needs optuna: pip install 'du-framework[tune]' (or pip install optuna)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def shown_url(url: str) -> str:
    """``url`` with its password hidden (for files and messages)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown as given, less anything after '@'
        return url.split("@")[-1] if "@" in url else url


def open_storage(url: str):
    """An optuna RDB storage for ``url`` (``sqlite:///PATH``, ``postgresql://...``, ``mysql://...``).

    SQLite waits up to 60 s for a lock held by another worker; server databases
    check their connection before use.

    Raises:
        ConfigError: another scheme, a missing database driver, or a database that
            cannot be opened (the message names the URL, password hidden).
    """
    optuna = load_optuna()
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    if scheme not in _STORAGE_SCHEMES:
        raise ConfigError(f"--storage {shown_url(url)!r}: unknown storage scheme {scheme or '(none)'!r}; give an "
                          f"optuna RDB URL: sqlite:///PATH.db (a file; three slashes, four for an absolute path), "
                          f"postgresql://USER:PASSWORD@HOST/DATABASE or mysql://USER:PASSWORD@HOST/DATABASE")
    if scheme == "sqlite":
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    try:
        for attempt in range(6):
            try:
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
            except Exception as error:  # noqa: BLE001 - SQLAlchemy's OperationalError, checked below
                # workers that start together race to create a new database's tables: the loser
                # sees "already exists" (or a lock) and finds the tables made when it tries again
                text = str(error)
                racing = ("already exists" in text or "database is locked" in text
                          or ("UNIQUE constraint failed" in text and "alembic_version" in text))
                if attempt == 5 or not racing:
                    raise
                time.sleep(0.2 * (attempt + 1))
    except ImportError as error:
        driver = {"postgresql": "psycopg2-binary (or psycopg)", "mysql": "PyMySQL (and use mysql+pymysql://)"}.get(
            scheme, "the database driver")
        raise ConfigError(f"--storage {shown_url(url)!r}: the database driver is not installed ({error}); "
                          f"pip install {driver}") from None
    except Exception as error:  # noqa: BLE001 - SQLAlchemy's OperationalError and friends
        text = " ".join(str(error).split())[:300]
        raise ConfigError(f"--storage {shown_url(url)!r}: cannot open the study database: "
                          f"{type(error).__name__}: {text}") from None


def study_identity(config: ExperimentConfig, entry: SolverConfig, dims: list[Dimension], fixed: dict,
                    metric: Metric, iteration: int, budget: dict, validation: dict) -> dict[str, Any]:
    from ..text import json_safe

    return json_safe({"solver": entry.name, "options": options_to_dict(entry.options),
                    "problem": config.to_dict()["problem"], "budget": {k: v for k, v in budget.items()
                                                                       if k not in ("trials", "timeout_seconds")},
                    "train": options_to_dict(config.train), "metric": metric.name, "iteration": iteration,
                    "validation": validation, "search_space": [d.to_dict() for d in dims], "fixed": fixed})
