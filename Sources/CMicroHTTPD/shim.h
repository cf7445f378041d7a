#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <microhttpd.h>

/* Swift cannot call C variadic functions: these two wrappers give the variadic calls prm makes
   a fixed signature. Options travel as one MHD_OPTION_ARRAY (terminated by MHD_OPTION_END). */

static inline struct MHD_Daemon *prm_mhd_start(unsigned int flags, MHD_AccessHandlerCallback handler, void *context,
                                               struct MHD_OptionItem *options) {
    return MHD_start_daemon(flags, 0, NULL, NULL, handler, context, MHD_OPTION_ARRAY, options, MHD_OPTION_END);
}

/* The port actually bound (a request for port 0 gets one from the system); 0 when unknown. */
static inline uint16_t prm_mhd_bound_port(struct MHD_Daemon *daemon) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info == NULL ? 0 : info->port;
}
