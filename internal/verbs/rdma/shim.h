// Thin C shims over rdma-core for package rdma (built only with cgo on Linux).
//
// Why they exist: ibv_post_send, ibv_post_recv, ibv_poll_cq and
// ibv_req_notify_cq are static inline, ibv_query_port and ibv_reg_mr are
// macros, and several structs hold unions (ibv_send_wr.wr, the CM event's
// param). Each shim takes flat scalars or pointers to C memory, does one
// thing, and keeps no pointer it was given beyond the call, so no Go pointer
// is ever retained by C (research/srp-protocol.md §6.1).
#ifndef SRP_MPATHD_RDMA_SHIM_H
#define SRP_MPATHD_RDMA_SHIM_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <infiniband/verbs.h>
#include <infiniband/umad.h>
#include <rdma/rdma_cma.h>

// shim_nonblock sets O_NONBLOCK on fd; -errno on failure.
static inline int shim_nonblock(int fd) {
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

// shim_port is the part of ibv_port_attr the seam reports.
struct shim_port {
	int state, link_layer, lid, sm_lid, sm_sl, subnet_timeout;
	int gid_tbl_len, pkey_tbl_len, active_mtu;
};

static inline int shim_query_port(struct ibv_context *ctx, uint8_t port, struct shim_port *out) {
	struct ibv_port_attr a;
	memset(&a, 0, sizeof(a));
	int rc = ibv_query_port(ctx, port, &a);
	if (rc)
		return rc;
	out->state = a.state;
	out->link_layer = a.link_layer;
	out->lid = a.lid;
	out->sm_lid = a.sm_lid;
	out->sm_sl = a.sm_sl;
	out->subnet_timeout = a.subnet_timeout;
	out->gid_tbl_len = a.gid_tbl_len;
	out->pkey_tbl_len = a.pkey_tbl_len;
	out->active_mtu = a.active_mtu;
	return 0;
}

// shim_device is the part of ibv_device_attr the seam reports.
struct shim_device {
	uint64_t node_guid; // host order
	uint64_t max_mr_size;
	int phys_port_cnt, max_qp_wr, max_sge, max_qp_rd_atom, max_qp_init_rd_atom, max_cqe;
	char fw_ver[64];
};

static inline int shim_query_device(struct ibv_context *ctx, struct shim_device *out) {
	struct ibv_device_attr a;
	memset(&a, 0, sizeof(a));
	int rc = ibv_query_device(ctx, &a);
	if (rc)
		return rc;
	out->node_guid = be64toh(a.node_guid);
	out->max_mr_size = a.max_mr_size;
	out->phys_port_cnt = a.phys_port_cnt;
	out->max_qp_wr = a.max_qp_wr;
	out->max_sge = a.max_sge;
	out->max_qp_rd_atom = a.max_qp_rd_atom;
	out->max_qp_init_rd_atom = a.max_qp_init_rd_atom;
	out->max_cqe = a.max_cqe;
	memcpy(out->fw_ver, a.fw_ver, sizeof(out->fw_ver) - 1);
	out->fw_ver[sizeof(out->fw_ver) - 1] = 0;
	return 0;
}

static inline const char *shim_ctx_name(struct ibv_context *ctx) {
	return ibv_get_device_name(ctx->device);
}

static inline int shim_ctx_async_fd(struct ibv_context *ctx) { return ctx->async_fd; }

static inline struct ibv_device *shim_dev_at(struct ibv_device **list, int i) { return list[i]; }
static inline struct ibv_context *shim_ctx_at(struct ibv_context **list, int i) { return list[i]; }

// shim_get_async_event takes one async event (non-blocking fd: -EAGAIN when
// none), copies its type and port, and acknowledges it at once.
static inline int shim_get_async_event(struct ibv_context *ctx, int *type, int *port) {
	struct ibv_async_event ev;
	if (ibv_get_async_event(ctx, &ev))
		return -errno;
	*type = ev.event_type;
	switch (ev.event_type) {
	case IBV_EVENT_PORT_ACTIVE:
	case IBV_EVENT_PORT_ERR:
	case IBV_EVENT_LID_CHANGE:
	case IBV_EVENT_PKEY_CHANGE:
	case IBV_EVENT_SM_CHANGE:
	case IBV_EVENT_CLIENT_REREGISTER:
	case IBV_EVENT_GID_CHANGE:
		*port = ev.element.port_num;
		break;
	default:
		*port = 0;
	}
	ibv_ack_async_event(&ev);
	return 0;
}

static inline struct ibv_mr *shim_reg_mr(struct ibv_pd *pd, uintptr_t addr, size_t len, int access) {
	return ibv_reg_mr(pd, (void *)addr, len, access);
}

static inline uint32_t shim_mr_lkey(struct ibv_mr *mr) { return mr->lkey; }
static inline uint32_t shim_mr_rkey(struct ibv_mr *mr) { return mr->rkey; }

// shim_sockaddr fills ss from a 16-byte address (IPv4 as ::ffff:a.b.c.d when
// v4 is set) and a port.
static inline socklen_t shim_sockaddr(struct sockaddr_storage *ss, int v4, const uint8_t *a16, uint16_t port, uint32_t scope) {
	memset(ss, 0, sizeof(*ss));
	if (v4) {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;
		s->sin_family = AF_INET;
		s->sin_port = htons(port);
		memcpy(&s->sin_addr, a16 + 12, 4);
		return sizeof(*s);
	}
	struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
	s->sin6_family = AF_INET6;
	s->sin6_port = htons(port);
	s->sin6_scope_id = scope;
	memcpy(&s->sin6_addr, a16, 16);
	return sizeof(*s);
}

// shim_addr copies a sockaddr back into 16 bytes plus a port; returns 4, 6 or 0.
static inline int shim_addr(const struct sockaddr *sa, uint8_t *a16, uint16_t *port) {
	memset(a16, 0, 16);
	*port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
		a16[10] = 0xff;
		a16[11] = 0xff;
		memcpy(a16 + 12, &s->sin_addr, 4);
		*port = ntohs(s->sin_port);
		return 4;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
		memcpy(a16, &s->sin6_addr, 16);
		*port = ntohs(s->sin6_port);
		return 6;
	}
	return 0;
}

static inline int shim_local_addr(struct rdma_cm_id *id, uint8_t *a16, uint16_t *port) {
	return shim_addr(rdma_get_local_addr(id), a16, port);
}

static inline int shim_peer_addr(struct rdma_cm_id *id, uint8_t *a16, uint16_t *port) {
	return shim_addr(rdma_get_peer_addr(id), a16, port);
}

static inline int shim_resolve_addr(struct rdma_cm_id *id, int v4, const uint8_t *src, const uint8_t *dst,
				    uint16_t dport, uint32_t scope, int timeout_ms) {
	struct sockaddr_storage s, d;
	shim_sockaddr(&s, v4, src, 0, scope);
	shim_sockaddr(&d, v4, dst, dport, scope);
	if (rdma_resolve_addr(id, (struct sockaddr *)&s, (struct sockaddr *)&d, timeout_ms))
		return -errno;
	return 0;
}

static inline int shim_bind_listen(struct rdma_cm_id *id, int v4, const uint8_t *a16, uint16_t port, uint32_t scope, int backlog) {
	struct sockaddr_storage s;
	shim_sockaddr(&s, v4, a16, port, scope);
	if (rdma_bind_addr(id, (struct sockaddr *)&s))
		return -errno;
	if (rdma_listen(id, backlog))
		return -errno;
	return 0;
}

static inline int shim_set_ack_timeout(struct rdma_cm_id *id, uint8_t timeout) {
	if (rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &timeout, sizeof(timeout)))
		return -errno;
	return 0;
}

static inline struct ibv_context *shim_id_verbs(struct rdma_cm_id *id) { return id->verbs; }
static inline struct ibv_qp *shim_id_qp(struct rdma_cm_id *id) { return id->qp; }
static inline int shim_channel_fd(struct rdma_event_channel *ch) { return ch->fd; }
static inline int shim_comp_fd(struct ibv_comp_channel *ch) { return ch->fd; }

// shim_cm_event is a copy of what package rdma reads from an rdma_cm_event.
struct shim_cm_event {
	int event, status;
	struct rdma_cm_id *id;        // the event's id (a new id for CONNECT_REQUEST)
	struct rdma_cm_id *listen_id; // the listener, for CONNECT_REQUEST
	int private_len;              // bytes copied into priv
};

// shim_get_cm_event takes one CM event (non-blocking channel: -EAGAIN when
// none), copies the private data into priv (up to cap bytes) before the ack,
// and acknowledges it: rdma_destroy_id waits for every event of its id to be
// acknowledged, so an event is never left unacked.
static inline int shim_get_cm_event(struct rdma_event_channel *ch, struct shim_cm_event *out, uint8_t *priv, int cap) {
	struct rdma_cm_event *ev;
	if (rdma_get_cm_event(ch, &ev))
		return -errno;
	out->event = ev->event;
	out->status = ev->status;
	out->id = ev->id;
	out->listen_id = ev->listen_id;
	out->private_len = 0;
	if (ev->event != RDMA_CM_EVENT_ADDR_RESOLVED && ev->event != RDMA_CM_EVENT_ROUTE_RESOLVED &&
	    ev->param.conn.private_data != NULL) {
		int n = ev->param.conn.private_data_len;
		if (n > cap)
			n = cap;
		memcpy(priv, ev->param.conn.private_data, n);
		out->private_len = n;
	}
	rdma_ack_cm_event(ev);
	return 0;
}

// shim_conn_param carries the scalar fields of rdma_conn_param.
struct shim_conn_param {
	uint8_t responder_resources, initiator_depth, retry_count, rnr_retry_count;
};

static inline void shim_fill_param(struct rdma_conn_param *p, const struct shim_conn_param *sp, const uint8_t *priv, int len) {
	memset(p, 0, sizeof(*p));
	p->private_data = priv;
	p->private_data_len = len;
	p->responder_resources = sp->responder_resources;
	p->initiator_depth = sp->initiator_depth;
	p->flow_control = 1;
	p->retry_count = sp->retry_count;
	p->rnr_retry_count = sp->rnr_retry_count;
}

// shim_connect and shim_accept copy the private data into a local buffer
// first: librdmacm copies it into its command synchronously, and this keeps
// the Go slice out of any C structure.
static inline int shim_connect(struct rdma_cm_id *id, const struct shim_conn_param *sp, const uint8_t *priv, int len) {
	uint8_t buf[256];
	struct rdma_conn_param p;
	if (len > (int)sizeof(buf))
		return -EINVAL;
	if (len)
		memcpy(buf, priv, len);
	shim_fill_param(&p, sp, buf, len);
	if (rdma_connect(id, &p))
		return -errno;
	return 0;
}

static inline int shim_accept(struct rdma_cm_id *id, const struct shim_conn_param *sp, const uint8_t *priv, int len) {
	uint8_t buf[256];
	struct rdma_conn_param p;
	if (len > (int)sizeof(buf))
		return -EINVAL;
	if (len)
		memcpy(buf, priv, len);
	shim_fill_param(&p, sp, buf, len);
	if (rdma_accept(id, &p))
		return -errno;
	return 0;
}

static inline int shim_reject(struct rdma_cm_id *id, const uint8_t *priv, int len) {
	uint8_t buf[256];
	if (len > (int)sizeof(buf))
		return -EINVAL;
	if (len)
		memcpy(buf, priv, len);
	if (rdma_reject(id, len ? buf : NULL, len))
		return -errno;
	return 0;
}

static inline int shim_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd, struct ibv_cq *cq,
				 int send_wr, int recv_wr, int send_sge, int recv_sge) {
	struct ibv_qp_init_attr a;
	memset(&a, 0, sizeof(a));
	a.send_cq = cq;
	a.recv_cq = cq;
	a.qp_type = IBV_QPT_RC;
	a.sq_sig_all = 0;
	a.cap.max_send_wr = send_wr;
	a.cap.max_recv_wr = recv_wr;
	a.cap.max_send_sge = send_sge;
	a.cap.max_recv_sge = recv_sge;
	if (rdma_create_qp(id, pd, &a))
		return -errno;
	return 0;
}

static inline int shim_qp_error(struct ibv_qp *qp) {
	struct ibv_qp_attr a;
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_ERR;
	return -ibv_modify_qp(qp, &a, IBV_QP_STATE);
}

// shim_qp_timeouts reads back the ACK timeout and retry counts the QP runs
// with (research/srp-protocol.md §7 question 3).
static inline int shim_qp_timeouts(struct ibv_qp *qp, int *timeout, int *retry, int *rnr_retry) {
	struct ibv_qp_attr a;
	struct ibv_qp_init_attr ia;
	int rc = ibv_query_qp(qp, &a, IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY, &ia);
	if (rc)
		return -rc;
	*timeout = a.timeout;
	*retry = a.retry_cnt;
	*rnr_retry = a.rnr_retry;
	return 0;
}

// Data path. sges points to C memory owned by the connection.
static inline int shim_post_send(struct ibv_qp *qp, uint64_t wr_id, int opcode, int flags,
				 uint64_t raddr, uint32_t rkey, struct ibv_sge *sges, int nsge) {
	struct ibv_send_wr wr, *bad = NULL;
	memset(&wr, 0, sizeof(wr));
	wr.wr_id = wr_id;
	wr.opcode = opcode;
	wr.send_flags = flags;
	wr.sg_list = nsge ? sges : NULL;
	wr.num_sge = nsge;
	wr.wr.rdma.remote_addr = raddr;
	wr.wr.rdma.rkey = rkey;
	return ibv_post_send(qp, &wr, &bad);
}

static inline int shim_post_recv(struct ibv_qp *qp, uint64_t wr_id, struct ibv_sge *sges, int nsge) {
	struct ibv_recv_wr wr, *bad = NULL;
	memset(&wr, 0, sizeof(wr));
	wr.wr_id = wr_id;
	wr.sg_list = nsge ? sges : NULL;
	wr.num_sge = nsge;
	return ibv_post_recv(qp, &wr, &bad);
}

static inline int shim_poll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc) { return ibv_poll_cq(cq, n, wc); }
static inline int shim_req_notify(struct ibv_cq *cq) { return ibv_req_notify_cq(cq, 0); }

// shim_drain_cq_events consumes every pending notification on a
// non-blocking completion channel and acknowledges them in one call.
static inline int shim_drain_cq_events(struct ibv_comp_channel *ch) {
	struct ibv_cq *cq, *last = NULL;
	void *ctx;
	int n = 0;
	while (ibv_get_cq_event(ch, &cq, &ctx) == 0) {
		if (last && last != cq) {
			ibv_ack_cq_events(last, n);
			n = 0;
		}
		last = cq;
		n++;
	}
	int err = errno;
	if (last)
		ibv_ack_cq_events(last, n);
	if (err != EAGAIN && err != EWOULDBLOCK)
		return -err;
	return 0;
}

// MAD (libibumad).
static inline int shim_umad_send(int fd, int agent, void *umad, const uint8_t *mad, int len, int lid, int qpn, int sl,
				 int qkey, int pkey_index, int timeout_ms) {
	memcpy(umad_get_mad(umad), mad, len);
	umad_set_addr(umad, lid, qpn, sl, qkey);
	umad_set_pkey(umad, pkey_index);
	return umad_send(fd, agent, umad, len, timeout_ms, 0);
}

// shim_umad_addr copies the source address of a received MAD.
static inline void shim_umad_addr(void *umad, int *lid, int *qpn, int *qkey, int *sl, int *pkey_index, int *grh, uint8_t *gid) {
	ib_mad_addr_t *a = umad_get_mad_addr(umad);
	*lid = ntohs(a->lid);
	*qpn = ntohl(a->qpn);
	*qkey = ntohl(a->qkey);
	*sl = a->sl;
	*pkey_index = a->pkey_index;
	*grh = a->grh_present;
	memcpy(gid, a->gid, 16);
}

#endif
