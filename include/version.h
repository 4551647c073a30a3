/* SPDX-License-Identifier: GPL-2.0 */
#ifndef MFT_VERSION_H
#define MFT_VERSION_H
#define MFT_VERSION "0.1.0"
#endif
