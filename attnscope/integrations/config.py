"""The ``attention:`` section of a training config, and the command-line switches that
win over it.

Example YAML::

    attention:
      enabled: true
      every_n_epochs: 1
      samples: 32          # the first 32 validation samples, the same every epoch
      modules: ["encoder.*"]
      heads: null          # all
      dtype: float16
      dir: null            # default: <trainer log dir>/attention
      per_epoch: true      # capture validation epochs (false: the test set only)
      test: true           # capture the test set
      formats: [npy, npz, csv]
      log_images: true

The names training scripts already use are read too (:data:`ALIASES`):
``save_attention``, ``save_per_epoch``, ``save_test``, ``save_every_n_epochs``,
``num_samples``, ``attention_dir``, ``save_format`` ... Giving both a name and its alias
is refused, as is any key neither knows.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from attnscope.errors import AttnscopeError, OptionError
from attnscope.options import store_dtype


class ConfigError(AttnscopeError, ValueError):
    """An ``attention:`` section that cannot be used as written."""


FORMATS = ("npy", "npz", "csv")
# names researchers' training configs give the same settings -> attnscope's name
ALIASES = {
    "save_attention": "enabled", "capture_attention": "enabled",
    "save_per_epoch": "per_epoch", "save_every_epoch": "per_epoch",
    "save_validation": "per_epoch",
    "save_test": "test", "save_test_attention": "test",
    "save_every_n_epochs": "every_n_epochs", "save_every": "every_n_epochs",
    "num_samples": "samples", "n_samples": "samples", "max_samples": "samples",
    "save_samples": "samples",
    "layers": "modules", "module": "modules", "attention_modules": "modules",
    "attention_dir": "dir", "save_dir": "dir", "output_dir": "dir",
    "save_format": "formats", "save_formats": "formats", "format": "formats",
    "log_to_tensorboard": "log_images", "plot": "log_images",
    "precision": "dtype", "save_dtype": "dtype",
}


@dataclass(frozen=True)
class AttentionConfig:
    enabled: bool = True
    every_n_epochs: int = 1
    samples: int | None = 32
    modules: tuple[str, ...] | None = None
    heads: tuple[int, ...] | None = None
    dtype: str = "float16"
    dir: str | None = None
    per_epoch: bool = True
    test: bool = True
    formats: tuple[str, ...] = FORMATS
    log_images: bool = True

    def __post_init__(self) -> None:
        for name in ("enabled", "per_epoch", "test", "log_images"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"attention.{name} must be true or false, got "
                                  f"{getattr(self, name)!r}")
        bad = [f for f in self.formats if f not in FORMATS]
        if bad:
            raise ConfigError(f"attention.formats {bad} unknown; choose from {list(FORMATS)}")
        if not isinstance(self.every_n_epochs, int) or self.every_n_epochs < 1:
            raise ConfigError(f"attention.every_n_epochs must be an integer >= 1, got "
                              f"{self.every_n_epochs!r}")
        if self.samples is not None and (not isinstance(self.samples, int) or self.samples < 1):
            raise ConfigError(f"attention.samples must be a positive integer or null, got "
                              f"{self.samples!r}")
        try:
            store_dtype(self.dtype)
        except OptionError as err:
            raise ConfigError(f"attention.dtype: {err}") from None

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any] | None) -> AttentionConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(k for k in dict(section or {}) if k not in known and k not in ALIASES)
        if unknown:
            raise ConfigError(f"unknown key(s) {unknown} in the attention section; "
                              f"known keys: {sorted(known)} (or their usual names: "
                              f"{', '.join(sorted(ALIASES))})")
        section = _canonical(dict(section or {}))
        for key in ("modules", "heads", "formats"):
            value = section.get(key)
            if isinstance(value, (str, int)):
                section[key] = (value,)
            elif value is not None:
                section[key] = tuple(value)
        return cls(**section)

    def callback_options(self) -> dict[str, Any]:
        """The keyword arguments of ``AttentionCallback`` this section sets."""
        return {"every_n_epochs": self.every_n_epochs, "samples": self.samples,
                "modules": self.modules, "heads": self.heads, "dtype": self.dtype,
                "dir": self.dir, "per_epoch": self.per_epoch, "test": self.test,
                "formats": self.formats, "log_images": self.log_images}

    def with_overrides(self, *, save_attention: bool | None = None,
                       attention_dir: str | os.PathLike | None = None) -> AttentionConfig:
        """Command-line switches (``--save-attention/--no-save-attention``,
        ``--attention-dir``) win over the file."""
        changes: dict[str, Any] = {}
        if save_attention is not None:
            changes["enabled"] = save_attention
        if attention_dir is not None:
            changes["dir"] = str(attention_dir)
        return replace(self, **changes)


def _canonical(section: dict[str, Any]) -> dict[str, Any]:
    """Aliases renamed to attnscope's keys (both given: refused)."""
    out: dict[str, Any] = {}
    for key, value in section.items():
        name = ALIASES.get(key, key)
        if name in out:
            given = [k for k in section if ALIASES.get(k, k) == name]
            raise ConfigError(f"attention section sets {name!r} twice ({' and '.join(given)}); "
                              "keep one")
        out[name] = value
    if isinstance(out.get("dir"), os.PathLike):
        out["dir"] = str(out["dir"])
    return out


def load_attention_config(path: str | os.PathLike | None, *, save_attention: bool | None = None,
                          attention_dir: str | os.PathLike | None = None) -> AttentionConfig:
    """Read the ``attention:`` section of a YAML file (absent file or section: defaults)
    and apply the command-line overrides."""
    section: Any = None
    if path is not None:
        import yaml

        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"config file {str(file)!r} does not exist")
        try:
            document = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {str(file)!r} is not valid YAML: "
                              f"{str(err).splitlines()[0]}") from None
        if not isinstance(document, dict):
            raise ConfigError(f"config file {str(file)!r} must hold a mapping at top level")
        section = document.get("attention")
        if section is not None and not isinstance(section, dict):
            raise ConfigError("the attention section must be a mapping of keys to values")
    try:
        config = AttentionConfig.from_mapping(section)
    except TypeError as err:
        raise ConfigError(f"attention section: {err}") from None
    return config.with_overrides(save_attention=save_attention, attention_dir=attention_dir)


def add_attention_arguments(parser: Any) -> Any:
    """Add ``--config``-independent switches to a training script's argparse parser:
    ``--save-attention / --no-save-attention`` and ``--attention-dir``.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_attention_arguments(parser)
        >>> args = parser.parse_args()
        >>> config = load_attention_config(args.config, **attention_overrides(args))
    """
    group = parser.add_argument_group("attention capture (attnscope)")
    switch = group.add_mutually_exclusive_group()
    switch.add_argument("--save-attention", dest="save_attention", action="store_true",
                        default=None, help="capture attention (wins over the config file)")
    switch.add_argument("--no-save-attention", dest="save_attention", action="store_false",
                        help="do not capture attention (wins over the config file)")
    group.add_argument("--attention-dir", dest="attention_dir", default=None,
                       help="where the store and exports go (wins over attention.dir)")
    return parser


def attention_overrides(args: Any) -> dict[str, Any]:
    """The parsed switches as keyword arguments of :func:`load_attention_config`."""
    return {"save_attention": getattr(args, "save_attention", None),
            "attention_dir": getattr(args, "attention_dir", None)}
