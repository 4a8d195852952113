"""Where products come from: PEPS FULL_MAJA orders and GEODES searches behind one interface
(``base``), the job store (``jobs``), the resumable verified download (``download``), and the
per-job workflows (``orders``: submit, follow, resubmit; ``job_files``: download and report)."""
