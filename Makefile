# Two commands do everything on a fresh Debian 12 machine:
#   make demo   install what is needed, start the embedded PostGIS, load the demo, serve :5000
#   make test   install what is needed and run the whole test suite (browser tests included)
PORT ?= 5000
VENV := .venv/bin

.PHONY: setup setup-test demo db-stop test lint format bench screenshot clean

setup:
	@scripts/setup.sh

setup-test:
	@scripts/setup.sh --test

# exec: serve replaces the recipe's shell, so Ctrl-C reaches serve alone, which stops the
# web server and the database and exits 0, and make has no "Interrupt" line to print
demo: setup
	@exec env MAPSVC_PORT=$(PORT) $(VENV)/mapsvc serve

# stop an embedded database left running (`mapsvc db status` says whether one runs)
db-stop:
	$(VENV)/mapsvc db stop

test: setup-test
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/pytest

lint: setup
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .

format: setup
	$(VENV)/ruff check --fix .
	$(VENV)/ruff format .

bench: setup-test
	@for b in bench/bench_*.py; do echo "== $$b"; $(VENV)/python $$b || exit 1; done

screenshot: setup-test
	$(VENV)/python scripts/screenshot.py docs/demo-map.png

clean:
	-$(VENV)/mapsvc db stop
	rm -rf .venv node_modules static/vendor var
