"""Built-in task types, registered through the `taskplan.task_types` entry-point group."""
