package netflow

import (
	"bytes"
	"encoding/binary"
	"testing"

	gfnetflow "github.com/netsampler/goflow2/v2/decoders/netflow"
	gflegacy "github.com/netsampler/goflow2/v2/decoders/netflowlegacy"
	flowpb "github.com/netsampler/goflow2/v2/pb"
	gfproducer "github.com/netsampler/goflow2/v2/producer"
	protoproducer "github.com/netsampler/goflow2/v2/producer/proto"
)

// oracle is goflow2 v2's NetFlow decoders plus its protobuf producer (which
// turns decoded sets into flow messages, with sampling rates per exporter),
// the reference this decoder is held to.
type oracle struct {
	templates gfnetflow.NetFlowTemplateSystem
	prod      gfproducer.ProducerInterface
}

func newOracle(tb testing.TB) *oracle {
	tb.Helper()
	cfg, err := (&protoproducer.ProducerConfig{}).Compile()
	if err != nil {
		tb.Fatal(err)
	}
	prod, err := protoproducer.CreateProtoProducer(cfg, protoproducer.CreateSamplingSystem)
	if err != nil {
		tb.Fatal(err)
	}
	return &oracle{templates: gfnetflow.CreateTemplateSystem(), prod: prod}
}

// decode returns goflow2's flow messages for one datagram (copies).
func (o *oracle) decode(dg datagram) ([]flowpb.FlowMessage, error) {
	msgs, err := o.produce(dg)
	out := make([]flowpb.FlowMessage, 0, len(msgs))
	for _, m := range msgs {
		pm := m.(*protoproducer.ProtoProducerMessage)
		out = append(out, flowpb.FlowMessage{
			Type: pm.Type, SamplingRate: pm.SamplingRate, ObservationDomainId: pm.ObservationDomainId,
			TimeFlowStartNs: pm.TimeFlowStartNs, TimeFlowEndNs: pm.TimeFlowEndNs,
			SrcAddr: append([]byte(nil), pm.SrcAddr...), DstAddr: append([]byte(nil), pm.DstAddr...),
			SrcPort: pm.SrcPort, DstPort: pm.DstPort, Proto: pm.Proto, TcpFlags: pm.TcpFlags,
			Packets: pm.Packets, Bytes: pm.Bytes, InIf: pm.InIf, OutIf: pm.OutIf,
			SrcMac: pm.SrcMac, DstMac: pm.DstMac, VlanId: pm.VlanId, IcmpType: pm.IcmpType, IcmpCode: pm.IcmpCode,
		})
	}
	o.prod.Commit(msgs)
	return out, err
}

// produce runs goflow2's decoder and producer on one datagram.
func (o *oracle) produce(dg datagram) ([]gfproducer.ProducerMessage, error) {
	args := &gfproducer.ProduceArgs{Src: dg.src, SamplerAddress: dg.src.Addr(), TimeReceived: dg.at}
	buf := bytes.NewBuffer(dg.payload)
	if len(dg.payload) >= 2 && binary.BigEndian.Uint16(dg.payload) == 5 {
		var p gflegacy.PacketNetFlowV5
		if err := gflegacy.DecodeMessageVersion(buf, &p); err != nil {
			return nil, err
		}
		return o.prod.Produce(&p, args)
	}
	var v9 gfnetflow.NFv9Packet
	var ipfix gfnetflow.IPFIXPacket
	if err := gfnetflow.DecodeMessageVersion(buf, o.templates, &v9, &ipfix); err != nil {
		return nil, err
	}
	if v9.Version == 9 {
		return o.prod.Produce(&v9, args)
	}
	return o.prod.Produce(&ipfix, args)
}
