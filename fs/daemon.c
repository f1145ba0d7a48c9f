/*
 * daemon.c - go to the background, and exit with the daemon's verdict
 * (see daemon.h).
 *
 * The verdict travels on a pipe: one byte from daemon_ready(), or the end
 * of the file when the daemon exits without it.  The write end is
 * close-on-exec, so the programs the daemon runs (qemu-img, QEMU) never
 * keep the parent waiting.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "snap.h"

/* the daemon's end of the pipe; -1 in the foreground and once ready */
static int verdict_fd = -1;

/* The parent: wait for the verdict of daemon @pid on @fd, exit with it. */
static void __attribute__((noreturn))
wait_for_verdict(pid_t pid, int fd, void (*died)(void *arg), void *arg)
{
	int status;
	char byte;
	ssize_t n;

	do
		n = read(fd, &byte, 1);
	while (n < 0 && errno == EINTR);
	if (n == 1)
		_exit(0);
	/* no verdict: the daemon has exited, and said why if it could */
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			_exit(1);
	}
	if (WIFEXITED(status))
		_exit(WEXITSTATUS(status) ? WEXITSTATUS(status) : 1);
	if (WIFSIGNALED(status)) {
		snap_log(LOG_ERR, "daemon: killed by signal %d (%s) as it started",
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
		died(arg);
	}
	_exit(1);
}

int daemon_start(bool foreground, void (*died)(void *arg), void *arg)
{
	int fds[2], null, rc;
	pid_t pid;

	if (chdir("/") < 0)
		snap_log(LOG_WARNING, "daemon: cannot change directory to '/': %m");
	if (foreground)
		return 0;
	if (pipe2(fds, O_CLOEXEC) < 0) {
		rc = -errno;
		snap_log(LOG_ERR, "daemon: cannot go to the background: %m");
		return rc;
	}
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		snap_log(LOG_ERR, "daemon: cannot go to the background: %m");
		close(fds[0]);
		close(fds[1]);
		return rc;
	}
	if (pid > 0) {
		close(fds[1]);
		wait_for_verdict(pid, fds[0], died, arg);
	}
	close(fds[0]);
	verdict_fd = fds[1];
	if (setsid() < 0)
		snap_log(LOG_WARNING, "daemon: cannot start a session: %m");
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		close(null);
	}
	return 0;
}

void daemon_ready(void)
{
	char byte = 0;
	int null;

	if (verdict_fd < 0)
		return;
	/* off the terminal before the parent returns to it */
	fflush(NULL);
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		close(null);
	}
	/* a parent that is gone hears nothing: nothing to do about it */
	if (write(verdict_fd, &byte, 1) != 1)
		snap_log(LOG_DEBUG, "daemon: the parent did not hear the verdict: %m");
	close(verdict_fd);
	verdict_fd = -1;
}
