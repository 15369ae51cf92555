"""Monitoring rules: the YAML rule language, its Python and DuckDB compilers, the engines."""

from freezedesk.monitoring.rules.backtest import backtest
from freezedesk.monitoring.rules.engine import Alert, StreamEngine, load_address_list
from freezedesk.monitoring.rules.language import Pack, Rule, RuleError, load_pack

__all__ = ["Alert", "Pack", "Rule", "RuleError", "StreamEngine", "backtest", "load_address_list", "load_pack"]
