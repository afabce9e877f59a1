"""Code both the API and the workers use: settings, Redis, job records, storage."""
