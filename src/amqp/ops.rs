//! Channel methods that need the broker. Until the broker facade is merged, they are refused
//! with 540 NOT_IMPLEMENTED so the protocol layer can be built and tested on its own.

use amq_protocol::frame::AMQPContentHeader;
use amq_protocol::protocol::{basic, AMQPClass};
use bytes::Bytes;

use super::channel::Channel;
use super::error::AmqpError;

impl Channel {
    pub(crate) async fn broker_method(&mut self, method: AMQPClass) -> Result<(), AmqpError> {
        Err(AmqpError::not_implemented(format!(
            "class {} method {} needs the broker",
            method.get_amqp_class_id(),
            method.get_amqp_method_id()
        )))
    }

    pub(crate) async fn publish(
        &mut self,
        _method: basic::Publish,
        _header: AMQPContentHeader,
        _body: Bytes,
    ) -> Result<(), AmqpError> {
        Err(AmqpError::not_implemented("basic.publish needs the broker"))
    }

    /// Drop consumers and in-flight state (channel close or exception).
    pub(crate) fn reset(&mut self) {}

    pub(crate) fn flow_changed(&mut self) {}
}
