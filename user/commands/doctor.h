/* SPDX-License-Identifier: GPL-2.0 */
#ifndef MFT_DOCTOR_H
#define MFT_DOCTOR_H
#include <stdint.h>
#include "collect/collector.h"
/* `mftrace doctor`: what this host and these QEMUs let mftrace observe, proven. */
int mft_doctor(const uint32_t *pids, int n_pids, const struct mft_collector_opts *co);
#endif
