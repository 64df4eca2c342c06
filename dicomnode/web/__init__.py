"""The operator's web app: server-rendered pages mounted into the node's FastAPI app.

:mod:`~dicomnode.web.queries` reads what the pages show (typed rows);
:mod:`~dicomnode.web.identifiers` the patient identifiers from one stored header per study;
:mod:`~dicomnode.web.results` the findings table and PNG preview of result instances;
:mod:`~dicomnode.web.pages` (FastAPI, Jinja2; imported on use) the routes and templates.
"""
