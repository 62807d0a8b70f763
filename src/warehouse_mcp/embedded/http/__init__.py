"""The HTTP layer: the only package that imports Starlette (routes, handlers, the connect page, webhook receivers)."""
