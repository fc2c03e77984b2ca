# Sourced by scripts/sanitize.sh and scripts/fuzz.sh: how the sanitizers report.
# halt_on_error / abort_on_error: the first report ends the process with a failure, and
# LeakSanitizer runs at every process exit.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1:strict_string_checks=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
