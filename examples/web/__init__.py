"""streamq in web apps: ``fastapi_app`` (FastAPI, Starlette alike) and ``aiohttp_app``, sharing
the job and its handler in ``tasks``. Run them from the repository's root."""
