"""`motif-lite serve`: the OpenAI Videos API over one loaded pipeline, a persistent job queue and a web page.

    jobs.py         the job store: SQLite (WAL) plus the job files under one data folder
    schema.py       the API's shapes: a create body -> GenerationRequest, a job -> video object, errors
    worker.py       the one thread that runs jobs in order, reports progress, stops between steps
    loras.py        per-job LoRAs: the files a job names, only inside the operator's --lora-dir
    extension.py    going on from a finished video of this server (`extend`)
    clip_upload.py  going on from an uploaded video file
    remix.py        a completed video's settings and seed with a new prompt
    app.py          the FastAPI routes (the API, the page, /health), authentication, job submission
    request_body.py a create body's fields and uploads, JSON or multipart
    body_limit.py   413 for a body over the server's limits, before it is read to its end
    runner.py       the composition the CLI (and the tests) start
    static/         the web page at `/` (plain HTML, JS and CSS)

Everything here needs the `server` extra (FastAPI, uvicorn, python-multipart); `motif_lite.cli.serve` imports
it only when the command runs.
"""
