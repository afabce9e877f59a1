"""RQ job functions and worker start-up; imports `shared/`, never `api/`."""
