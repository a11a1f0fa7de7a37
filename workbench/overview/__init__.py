"""The overview: what this installation can do and where the user stands in the workshop.

Modules:
    doctor  workspace contents, device, backends and models (`collect_facts`, `format_facts`)
    guide   the "start here" path, each step's state from the workspace (`guide_steps`, `workspace_progress`)
"""
