"""The console: server-rendered pages under `/console` in `dmetl serve`, beside the Dagster UI,
behind the same sign-in and roles (see docs/console.md).

Adding pages: write a module under `etl_assets/console/pages/` that exports
`routes: list[Route]` (full paths under `/console/...`), guard every handler with
`framework.require(action)` (an action of `etl_assets.web.roles.ACTIONS`), render with
`framework.render(ctx, "template.html", ...)` (templates in `etl_assets/console/templates/`,
extending `base.html`), record what a POST did with `ctx.audit(...)`, and list the module in
`PAGE_MODULES` of `etl_assets/console/app.py`.
"""
