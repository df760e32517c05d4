"""The registry of task types, filled from the ``taskplan.task_types`` entry points and ``taskplan.plugins``.

Registration validates a plugin and names the plugin, where it came from and the problem, in the spirit
of pluggy's PluginValidationError.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points

from taskplan.names import InvalidNameError, validate_task_type
from taskplan.plugin import PluginContext, TaskExecutor, TaskGenerator, TaskTypePlugin

ENTRY_POINT_GROUP = "taskplan.task_types"


class PluginValidationError(Exception):
    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"task-type plugin {source}: {problem}")
        self.source = source
        self.problem = problem


class UnknownTaskTypeError(KeyError):
    def __init__(self, task_type: str) -> None:
        super().__init__(task_type)
        self.task_type = task_type

    def __str__(self) -> str:
        return f"unknown task type {self.task_type!r}"


@dataclass(frozen=True)
class RegisteredTaskType:
    task_type: str
    plugin: TaskTypePlugin
    supports_orchestration: bool
    orchestration_only: bool
    source: str

    def new_generator(self, context: PluginContext) -> TaskGenerator:
        generator = self.plugin.generator()
        generator.init(context)
        return generator

    def new_executor(self) -> TaskExecutor:
        return self.plugin.executor()


class TaskTypeRegistry:
    def __init__(self) -> None:
        self._types: dict[str, RegisteredTaskType] = {}

    def register(self, plugin: object, source: str = "<code>") -> RegisteredTaskType:
        if not isinstance(plugin, TaskTypePlugin):
            raise PluginValidationError(source, f"expected a TaskTypePlugin, got {type(plugin).__name__}")
        try:
            generator = plugin.generator()
        except Exception as exc:
            raise PluginValidationError(source, f"creating its generator failed: {exc!r}") from exc
        if not isinstance(generator, TaskGenerator):
            raise PluginValidationError(source, "its generator does not implement the TaskGenerator protocol")
        task_type = getattr(generator, "task_type", "")
        try:
            validate_task_type(task_type)
        except InvalidNameError as exc:
            raise PluginValidationError(source, str(exc)) from exc
        named = f"{source} ({task_type})"
        supports = bool(generator.supports_orchestration)
        only = bool(generator.orchestration_only)
        if only and not supports:
            raise PluginValidationError(named, "orchestration_only requires supports_orchestration")
        if not callable(plugin.executor):
            raise PluginValidationError(named, "its executor factory is not callable")
        _check_overrides(named, generator)
        if task_type in self._types and self._types[task_type].plugin is not plugin:
            raise PluginValidationError(
                named, f"task type {task_type} is already registered by {self._types[task_type].source}"
            )
        registered = RegisteredTaskType(task_type, plugin, supports, only, source)
        self._types[task_type] = registered
        return registered

    def get(self, task_type: str) -> RegisteredTaskType:
        try:
            return self._types[task_type]
        except KeyError:
            raise UnknownTaskTypeError(task_type) from None

    def __contains__(self, task_type: object) -> bool:
        return task_type in self._types

    def __iter__(self) -> Iterator[RegisteredTaskType]:
        return iter(sorted(self._types.values(), key=lambda t: t.task_type))

    def task_types(self) -> list[str]:
        return sorted(self._types)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        for ep in entry_points(group=group):
            source = f"entry point {ep.name!r} ({ep.value})"
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginValidationError(source, f"loading failed: {exc!r}") from exc
            self.register(plugin, source)

    def load_specs(self, specs: Iterable[str]) -> None:
        """Load ``module:attribute`` plugin references (the ``taskplan.plugins`` property)."""
        for spec in specs:
            spec = spec.strip()
            if not spec:
                continue
            module_name, _, attribute = spec.partition(":")
            source = f"{spec!r} from taskplan.plugins"
            if not module_name or not attribute:
                raise PluginValidationError(source, "expected module:attribute")
            try:
                plugin = getattr(importlib.import_module(module_name), attribute)
            except Exception as exc:
                raise PluginValidationError(source, f"loading failed: {exc!r}") from exc
            self.register(plugin, source)


def _check_overrides(source: str, generator: TaskGenerator) -> None:
    tag = "minion_untagged"
    checks: dict[str, Callable[[], int]] = {
        "get_task_timeout_ms": lambda: generator.get_task_timeout_ms(tag),
        "get_num_concurrent_tasks_per_instance": lambda: generator.get_num_concurrent_tasks_per_instance(tag),
        "get_max_attempts_per_task": lambda: generator.get_max_attempts_per_task(tag),
    }
    for name, call in checks.items():
        try:
            value = call()
        except Exception as exc:
            raise PluginValidationError(source, f"{name} raised {exc!r}") from exc
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise PluginValidationError(source, f"{name} must return a positive int, got {value!r}")


def build_registry(
    plugin_specs: str = "", *, entry_points_group: str | None = ENTRY_POINT_GROUP
) -> TaskTypeRegistry:
    registry = TaskTypeRegistry()
    if entry_points_group:
        registry.load_entry_points(entry_points_group)
    registry.load_specs(plugin_specs.split(","))
    return registry
