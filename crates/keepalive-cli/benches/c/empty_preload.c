/* The smallest possible LD_PRELOAD library: the baseline for what loading any
 * preload at all costs a process start (see ../preload.rs). */
void keepalive_empty(void) {}
