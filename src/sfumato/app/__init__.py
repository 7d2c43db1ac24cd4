"""The artist's app: ``sfumato serve``, a local web page that protects a folder of work.

Artists use protection tools as desktop apps, not command lines, so this package puts a small local
web server in front of the engine (:func:`sfumato.protect.cloak` and :func:`sfumato.protect.shade`):

- :mod:`.config`  where the app keeps its data, and its limits
- :mod:`.db`      the embedded SQLite record of uploads, jobs and per-image results
- :mod:`.uploads` checking and storing uploaded images, thumbnails and style previews
- :mod:`.jobs`    checking a job request from the page
- :mod:`.heatmap` the visibility heat map of where an image was changed
- :mod:`.worker`  the background thread that runs jobs one at a time, resumably
- :mod:`.server`  the HTTP endpoints and :func:`~sfumato.app.server.serve`
- ``static/``     the page: plain HTML, CSS and JavaScript, no build step, nothing loaded from the network

It needs the ``app`` extra (``pip install 'sfumato[app]'``): Starlette, uvicorn and python-multipart.
"""
