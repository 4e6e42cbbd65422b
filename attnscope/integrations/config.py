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


@dataclass(frozen=True)
class AttentionConfig:
    enabled: bool = True
    every_n_epochs: int = 1
    samples: int | None = 32
    modules: tuple[str, ...] | None = None
    heads: tuple[int, ...] | None = None
    dtype: str = "float16"
    dir: str | None = None

    def __post_init__(self) -> None:
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
        section = dict(section or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError(f"unknown key(s) {unknown} in the attention section; "
                              f"known keys: {sorted(known)}")
        for key in ("modules", "heads"):
            value = section.get(key)
            if isinstance(value, (str, int)):
                section[key] = (value,)
            elif value is not None:
                section[key] = tuple(value)
        return cls(**section)

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
