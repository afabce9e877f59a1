.PHONY: run test bench

run:  ## start Redis (if local and not running), the API, $(WORKERS) workers and the scheduler
	bash scripts/run.sh

test:  ## install what the tests need and run the whole suite
	bash scripts/test.sh

bench:  ## measure throughput, latency and memory against raw WeasyPrint
	bash scripts/bench.sh $(ARGS)
