"""Plugins: hooks around tracking, storing, querying and exporting, each isolated from tracking."""

from __future__ import annotations

from .base import HOOKS, Plugin, QueryResult
from .discovery import ENTRY_POINT_GROUP, available, build_plugin
from .manager import PluginManager
from .runner import PluginRunner

__all__ = ["ENTRY_POINT_GROUP", "HOOKS", "Plugin", "PluginManager", "PluginRunner", "QueryResult", "available",
           "build_plugin"]
