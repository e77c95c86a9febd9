#!/bin/sh
klaud-no-such-tool-anywhere --run-tests
